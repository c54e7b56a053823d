package main

// The code whose coverage the tests compare: main.go's own counters change
// when the process exits, these only when work runs.

func classify(n int) string {
	switch {
	case n%15 == 0:
		return "fizzbuzz"
	case n%5 == 0:
		return "buzz"
	case n%3 == 0:
		return "fizz"
	}
	return "number"
}

func work(n int) map[string]int {
	counts := map[string]int{}
	for i := 1; i <= n; i++ {
		counts[classify(i)]++
	}
	return counts
}

func neverCalled() int {
	x := 0
	for i := 0; i < 10; i++ {
		x += i
	}
	return x
}
