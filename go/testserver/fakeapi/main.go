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
	raw  []json.RawMessage
	pods []pod
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

func (s *store) find(ns, name string) int {
	for i, p := range s.pods {
		if p.Metadata.Namespace == ns && p.Metadata.Name == name {
			return i
		}
	}
	return -1
}

func main() {
	podsFile := flag.String("pods", "", "PodList JSON file")
	token := flag.String("token", "", "bearer token clients must send")
	flag.Parse()
	data, err := os.ReadFile(*podsFile)
	if err != nil {
		log.Fatal(err)
	}
	var doc struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		log.Fatalf("%s: %v", *podsFile, err)
	}
	s := &store{raw: doc.Items}
	for _, raw := range doc.Items {
		var p pod
		if err := json.Unmarshal(raw, &p); err != nil {
			log.Fatal(err)
		}
		s.pods = append(s.pods, p)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, r *http.Request) { s.list(w, r, "") })
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods", func(w http.ResponseWriter, r *http.Request) {
		s.list(w, r, r.PathValue("ns"))
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}/portforward", func(w http.ResponseWriter, r *http.Request) {
		i := s.find(r.PathValue("ns"), r.PathValue("name"))
		if i < 0 {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", r.PathValue("name")))
			return
		}
		s.portforward(w, r, i)
	})
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}", func(w http.ResponseWriter, r *http.Request) {
		i := s.find(r.PathValue("ns"), r.PathValue("name"))
		if i < 0 {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", r.PathValue("name")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.raw[i])
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
		i := s.find(ns, name)
		if !ok || i < 0 {
			status(w, 404, "NotFound", fmt.Sprintf("pods %q not found", name))
			return true
		}
		backend := net.JoinHostPort(s.pods[i].Status.PodIP, port)
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
