module example.com/covfleet/demo

go 1.22
