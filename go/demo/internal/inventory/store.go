// Package inventory is the demo service's in-memory item store.
package inventory

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrNotFound is returned for an unknown item id.
var ErrNotFound = errors.New("item not found")

// Item is one thing for sale.
type Item struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"price_cents"`
	Stock      int    `json:"stock"`
}

// Store holds items; safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	next  int
	items map[int]Item
}

// NewStore returns a store with a few items in it.
func NewStore() *Store {
	s := &Store{next: 1, items: map[int]Item{}}
	for _, it := range []Item{
		{Name: "gopher plush", PriceCents: 1999, Stock: 12},
		{Name: "coverage mug", PriceCents: 1250, Stock: 40},
		{Name: "sticker pack", PriceCents: 499, Stock: 300},
	} {
		_, _ = s.Add(it)
	}
	return s
}

// Add validates and stores an item, assigning its id.
func (s *Store) Add(it Item) (Item, error) {
	it.Name = strings.TrimSpace(it.Name)
	switch {
	case it.Name == "":
		return Item{}, errors.New("name is required")
	case it.PriceCents < 0:
		return Item{}, fmt.Errorf("price %d is negative", it.PriceCents)
	case it.Stock < 0:
		return Item{}, fmt.Errorf("stock %d is negative", it.Stock)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it.ID = s.next
	s.next++
	s.items[it.ID] = it
	return it, nil
}

// Get returns one item.
func (s *Store) Get(id int) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[id]
	if !ok {
		return Item{}, fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	return it, nil
}

// List returns all items ordered by id.
func (s *Store) List() []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Item, 0, len(s.items))
	for _, it := range s.items {
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Delete removes one item.
func (s *Store) Delete(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[id]; !ok {
		return fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	delete(s.items, id)
	return nil
}

// Reset empties the store.
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = map[int]Item{}
	s.next = 1
}
