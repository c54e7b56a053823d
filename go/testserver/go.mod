module covfleet.invalid/testserver

go 1.22
