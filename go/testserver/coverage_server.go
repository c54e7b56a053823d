// Test coverage server for covfleet's collect tests.
//
// It implements the coverage-server protocol (docs/collect.md) with the
// real runtime/coverage API, so tests scrape genuine covmeta/covcounters
// bytes. Like the injected server it is a `package main` file started from
// init(), and every identifier and import carries the `_cov` prefix. The
// official server (go/covserver/coverage_server.go) is a drop-in
// replacement: the Rust test harness names the server file in one place.
package main

import (
	_covbytes "bytes"
	_covgzip "compress/gzip"
	_covbase64 "encoding/base64"
	_covhex "encoding/hex"
	_covjson "encoding/json"
	_covfmt "fmt"
	_covnet "net"
	_covhttp "net/http"
	_covos "os"
	_covfilepath "path/filepath"
	_covcoverage "runtime/coverage"
	_covstrconv "strconv"
	_covstrings "strings"
	_covsync "sync"
	_covtime "time"
)

const (
	_covDefaultPort = 53700
	_covPortTries   = 50
)

type _covResponse struct {
	MetaFilename     string `json:"meta_filename,omitempty"`
	MetaData         string `json:"meta_data,omitempty"`
	CountersFilename string `json:"counters_filename"`
	CountersData     string `json:"counters_data"`
	Timestamp        int64  `json:"timestamp"`
}

var (
	_covMu      _covsync.Mutex
	_covHashHex string
)

func init() {
	start := _covDefaultPort
	if s := _covos.Getenv("COVERAGE_PORT"); s != "" {
		if p, err := _covstrconv.Atoi(s); err == nil && p > 0 && p < 65536 {
			start = p
		}
	}
	if _covstrings.HasSuffix(_covos.Args[0], ".test") {
		return // under `go test` the handler is tested directly, without a port
	}
	var ln _covnet.Listener
	for p := start; p < start+_covPortTries && p < 65536; p++ {
		l, err := _covnet.Listen("tcp", _covfmt.Sprintf(":%d", p))
		if err == nil {
			ln = l
			break
		}
	}
	if ln == nil {
		return // no free port: the program runs normally, without a server
	}
	srv := &_covhttp.Server{Handler: _covHandler(), ReadHeaderTimeout: 10 * _covtime.Second}
	go srv.Serve(ln)
}

func _covIdentity(h _covhttp.Header) {
	h.Set("X-Art-Coverage-Server", "1")
	h.Set("X-Art-Coverage-Pid", _covstrconv.Itoa(_covos.Getpid()))
	h.Set("X-Art-Coverage-Binary", _covfilepath.Base(_covos.Args[0]))
	for _, kv := range [][3]string{
		{"X-Art-Coverage-Source-Commit", "SOURCE_GIT_COMMIT", ""},
		{"X-Art-Coverage-Source-Url", "SOURCE_GIT_URL", ""},
		{"X-Art-Coverage-Software-Group", "SOFTWARE_GROUP", "__doozer_group"},
		{"X-Art-Coverage-Software-Key", "SOFTWARE_KEY", "__doozer_key"},
	} {
		v := _covos.Getenv(kv[1])
		if v == "" && kv[2] != "" {
			v = _covos.Getenv(kv[2])
		}
		if v != "" {
			h.Set(kv[0], v)
		}
	}
}

func _covAuthorized(r *_covhttp.Request) bool {
	tok := _covos.Getenv("COVERAGE_TOKEN")
	return tok == "" || r.Header.Get("Authorization") == "Bearer "+tok
}

func _covHandler() _covhttp.Handler {
	mux := _covhttp.NewServeMux()
	mux.HandleFunc("/health", func(w _covhttp.ResponseWriter, r *_covhttp.Request) {
		_covfmt.Fprintln(w, "coverage server healthy")
	})
	mux.HandleFunc("/coverage", _covServeCoverage)
	mux.HandleFunc("/coverage/reset", _covServeReset)
	return _covhttp.HandlerFunc(func(w _covhttp.ResponseWriter, r *_covhttp.Request) {
		_covIdentity(w.Header())
		if r.Method == _covhttp.MethodHead {
			w.WriteHeader(_covhttp.StatusOK)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// _covCountersHash reads the meta hash from a counter file header (bytes 8..24).
func _covCountersHash(counters []byte) string {
	if len(counters) < 24 {
		return ""
	}
	return _covhex.EncodeToString(counters[8:24])
}

func _covServeCoverage(w _covhttp.ResponseWriter, r *_covhttp.Request) {
	if r.Method != _covhttp.MethodGet {
		_covhttp.Error(w, "use GET", _covhttp.StatusMethodNotAllowed)
		return
	}
	if !_covAuthorized(r) {
		_covhttp.Error(w, "missing or wrong bearer token", _covhttp.StatusUnauthorized)
		return
	}
	nometa := r.URL.Query().Get("nometa") == "1"
	var meta, counters _covbytes.Buffer
	_covMu.Lock()
	if !nometa || _covHashHex == "" {
		if err := _covcoverage.WriteMeta(&meta); err != nil {
			_covMu.Unlock()
			_covhttp.Error(w, "binary not built with -cover: "+err.Error(), _covhttp.StatusInternalServerError)
			return
		}
	}
	err := _covcoverage.WriteCounters(&counters)
	if err == nil {
		_covHashHex = _covCountersHash(counters.Bytes())
	}
	hash := _covHashHex
	_covMu.Unlock()
	if err != nil {
		_covhttp.Error(w, "binary not built with -cover -covermode=atomic: "+err.Error(), _covhttp.StatusInternalServerError)
		return
	}
	now := _covtime.Now()
	resp := _covResponse{
		CountersFilename: _covfmt.Sprintf("covcounters.%s.%d.%d", hash, _covos.Getpid(), now.UnixNano()),
		CountersData:     _covbase64.StdEncoding.EncodeToString(counters.Bytes()),
		Timestamp:        now.UnixNano(),
	}
	if !nometa {
		resp.MetaFilename = "covmeta." + hash
		resp.MetaData = _covbase64.StdEncoding.EncodeToString(meta.Bytes())
	}
	body, err := _covjson.Marshal(resp)
	if err != nil {
		_covhttp.Error(w, err.Error(), _covhttp.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _covstrings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz := _covgzip.NewWriter(w)
		gz.Write(body)
		gz.Close()
		return
	}
	w.Write(body)
}

func _covServeReset(w _covhttp.ResponseWriter, r *_covhttp.Request) {
	if r.Method != _covhttp.MethodPost {
		_covhttp.Error(w, "use POST", _covhttp.StatusMethodNotAllowed)
		return
	}
	if !_covAuthorized(r) {
		_covhttp.Error(w, "missing or wrong bearer token", _covhttp.StatusUnauthorized)
		return
	}
	if err := _covcoverage.ClearCounters(); err != nil {
		_covhttp.Error(w, "cannot reset counters (binary not built with -cover -covermode=atomic): "+err.Error(), _covhttp.StatusInternalServerError)
		return
	}
	_covfmt.Fprintln(w, "coverage counters reset")
}
