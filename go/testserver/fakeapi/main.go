// fakeapi replays recorded Kubernetes API answers for covfleet's `collect
// --kube` tests: pod lists and gets from a PodList JSON file, the pod
// `portforward` subresource (WebSocket, portforward.go), and the pod
// `proxy` subresource, which it forwards (like the real API server) to
// status.podIP:PORT, answering 503 with a Status object when nothing
// listens there. It checks a bearer token like a real API server would.
//
//	fakeapi -pods pods.json -token T   # prints "listening on 127.0.0.1:PORT"
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
)

type pod struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Status struct {
		PodIP string `json:"podIP"`
	} `json:"status"`
}

type store struct {
	mu   sync.Mutex
	file string
	raw  []json.RawMessage
	pods []pod
}

// load (re)reads the pod file, so a test can add pods while clients watch.
func (s *store) load() error {
	data, err := os.ReadFile(s.file)
	if err != nil {
		return err
	}
	var doc struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %v", s.file, err)
	}
	pods := make([]pod, 0, len(doc.Items))
	for _, raw := range doc.Items {
		var p pod
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%s: %v", s.file, err)
		}
		pods = append(pods, p)
	}
	s.mu.Lock()
	s.raw, s.pods = doc.Items, pods
	s.mu.Unlock()
	return nil
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

// matches implements equality-based label selectors (a=b,c!=d,e).
func matches(sel string, labels map[string]string) bool {
	for _, term := range strings.Split(sel, ",") {
		term = strings.TrimSpace(term)
		switch {
		case term == "":
		case strings.Contains(term, "!="):
			kv := strings.SplitN(term, "!=", 2)
			if labels[kv[0]] == kv[1] {
				return false
			}
		case strings.Contains(term, "="):
			kv := strings.SplitN(strings.Replace(term, "==", "=", 1), "=", 2)
			if labels[kv[0]] != kv[1] {
				return false
			}
		default:
			if _, ok := labels[term]; !ok {
				return false
			}
		}
	}
	return true
}

func (s *store) list(w http.ResponseWriter, r *http.Request, ns string) {
	if err := s.load(); err != nil {
		status(w, 500, "InternalError", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	items := []json.RawMessage{}
	sel := r.URL.Query().Get("labelSelector")
	for i, p := range s.pods {
		if (ns == "" || p.Metadata.Namespace == ns) && matches(sel, p.Metadata.Labels) {
			items = append(items, s.raw[i])
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"kind": "PodList", "apiVersion": "v1",
		"metadata": map[string]any{"resourceVersion": "4242"},
		"items":    items,
	})
}

// find looks a pod up in the current snapshot.
func (s *store) find(ns, name string) (pod, json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.pods {
		if p.Metadata.Namespace == ns && p.Metadata.Name == name {
			return p, s.raw[i], true
		}
	}
	return pod{}, nil, false
}

func main() {
	podsFile := flag.String("pods", "", "PodList JSON file")
	token := flag.String("token", "", "bearer token clients must send")
	flag.Parse()
	s := &store{file: *podsFile}
	if err := s.load(); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, r *http.Request) { s.list(w, r, "") })
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods", func(w http.ResponseWriter, r *http.Request) {
		s.list(w, r, r.PathValue("ns"))
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}/portforward", func(w http.ResponseWriter, r *http.Request) {
		p, _, ok := s.find(r.PathValue("ns"), r.PathValue("name"))
		if !ok {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", r.PathValue("name")))
			return
		}
		s.portforward(w, r, p)
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}", func(w http.ResponseWriter, r *http.Request) {
		_, raw, ok := s.find(r.PathValue("ns"), r.PathValue("name"))
		if !ok {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", r.PathValue("name")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(raw)
	})
	// The proxy subresource is routed by hand on the escaped path, like the
	// API server: ServeMux would "clean" a percent-encoded name such as
	// "..%2F..%2Fx" into a redirect.
	proxyRoute := func(w http.ResponseWriter, r *http.Request) bool {
		seg := strings.Split(r.URL.EscapedPath(), "/")
		// "", api, v1, namespaces, NS, pods, NAME:PORT, proxy, rest...
		if len(seg) < 8 || seg[1] != "api" || seg[3] != "namespaces" || seg[5] != "pods" || seg[7] != "proxy" {
			return false
		}
		ns, err1 := url.PathUnescape(seg[4])
		target, err2 := url.PathUnescape(seg[6])
		if err1 != nil || err2 != nil {
			status(w, 400, "BadRequest", "bad path")
			return true
		}
		rest := "/" + strings.Join(seg[8:], "/")
		name, port, ok := strings.Cut(target, ":")
		p, _, found := s.find(ns, name)
		if !ok || !found {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", name))
			return true
		}
		backend := net.JoinHostPort(p.Status.PodIP, port)
		proxy := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL = &url.URL{Scheme: "http", Host: backend, Path: rest, RawQuery: r.URL.RawQuery}
				pr.Out.Header.Del("Authorization")
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				status(w, 503, "ServiceUnavailable", "error trying to reach service: "+err.Error())
			},
		}
		proxy.ServeHTTP(w, r)
		return true
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *token != "" && r.Header.Get("Authorization") != "Bearer "+*token {
			status(w, 401, "Unauthorized", "Unauthorized")
			return
		}
		if !proxyRoute(w, r) {
			mux.ServeHTTP(w, r)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, handler))
}
