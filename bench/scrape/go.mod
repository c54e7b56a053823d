module covfleet.invalid/benchscrape

go 1.21
