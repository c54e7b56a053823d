package inventory

import (
	"errors"
	"sync"
	"testing"
)

func TestAddGetDelete(t *testing.T) {
	s := NewStore()
	it, err := s.Add(Item{Name: "  thing ", PriceCents: 5, Stock: 1})
	if err != nil {
		t.Fatal(err)
	}
	if it.Name != "thing" || it.ID != 4 {
		t.Fatalf("got %+v", it)
	}
	if got, err := s.Get(it.ID); err != nil || got != it {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if err := s.Delete(it.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(it.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Delete(it.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestAddRejectsBadItems(t *testing.T) {
	s := NewStore()
	for _, it := range []Item{{Name: " "}, {Name: "x", PriceCents: -1}, {Name: "x", Stock: -1}} {
		if _, err := s.Add(it); err == nil {
			t.Errorf("Add(%+v) succeeded", it)
		}
	}
}

func TestConcurrentAdds(t *testing.T) {
	s := NewStore()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Add(Item{Name: "n", PriceCents: 1})
		}()
	}
	wg.Wait()
	if n := len(s.List()); n != 23 {
		t.Fatalf("%d items, want 23", n)
	}
	s.Reset()
	if n := len(s.List()); n != 0 {
		t.Fatalf("%d items after Reset", n)
	}
}
