// The injected coverage server and its tests. The go directive is old on
// purpose: the server must compile in host modules at old language versions.
module covfleet.invalid/covserver

go 1.16
