package main

// The pod `portforward` subresource over WebSocket, channel protocol
// v4.channel.k8s.io as the API server and kubelet speak it: for each port,
// channel 0 carries data and channel 1 errors; the first frame on each
// channel is the port number (2 bytes, little endian); every binary frame
// starts with its channel byte. Written by hand: the standard library has no
// WebSocket.

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsWrite(w io.Writer, mu *sync.Mutex, opcode byte, payload []byte) error {
	mu.Lock()
	defer mu.Unlock()
	hdr := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n < 1<<16:
		hdr = append(hdr, 126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if _, err := w.Write(append(hdr, payload...)); err != nil {
		return err
	}
	return nil
}

// wsRead reads one (unfragmented or reassembled) message from the client.
func wsRead(r *bufio.Reader) (opcode byte, payload []byte, err error) {
	for {
		var h [2]byte
		if _, err = io.ReadFull(r, h[:]); err != nil {
			return 0, nil, err
		}
		op := h[0] & 0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err = io.ReadFull(r, b[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err = io.ReadFull(r, b[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<26 {
			return 0, nil, errors.New("frame too large")
		}
		var mask [4]byte
		if h[1]&0x80 != 0 {
			if _, err = io.ReadFull(r, mask[:]); err != nil {
				return 0, nil, err
			}
		}
		buf := make([]byte, n)
		if _, err = io.ReadFull(r, buf); err != nil {
			return 0, nil, err
		}
		for i := range buf {
			buf[i] ^= mask[i%4]
		}
		if op != 0 {
			opcode = op
		}
		payload = append(payload, buf...)
		if h[0]&0x80 != 0 {
			return opcode, payload, nil
		}
	}
}

func (s *store) portforward(w http.ResponseWriter, r *http.Request, target pod) {
	port, err := strconv.Atoi(r.URL.Query().Get("ports"))
	if err != nil || port <= 0 || port > 65535 {
		status(w, 400, "BadRequest", "exactly one port is supported here")
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		status(w, 400, "BadRequest", "websocket upgrade required")
		return
	}
	proto := ""
	for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if strings.TrimSpace(p) == "v4.channel.k8s.io" {
			proto = "v4.channel.k8s.io"
		}
	}
	if proto == "" {
		status(w, 400, "BadRequest", "subprotocol v4.channel.k8s.io required")
		return
	}
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + wsGUID))
	hj, ok := w.(http.Hijacker)
	if !ok {
		status(w, 500, "InternalError", "cannot hijack")
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n" +
		"Sec-WebSocket-Protocol: " + proto + "\r\n\r\n")
	rw.Flush()

	var mu sync.Mutex
	p := []byte{byte(port), byte(port >> 8)}
	wsWrite(conn, &mu, 2, append([]byte{0}, p...))
	wsWrite(conn, &mu, 2, append([]byte{1}, p...))
	backend, err := net.Dial("tcp", net.JoinHostPort(target.Status.PodIP, strconv.Itoa(port)))
	if err != nil {
		wsWrite(conn, &mu, 2, append([]byte{1}, []byte("error forwarding port "+strconv.Itoa(port)+": "+err.Error())...))
		wsWrite(conn, &mu, 8, nil)
		return
	}
	defer backend.Close()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := backend.Read(buf)
			if n > 0 {
				if wsWrite(conn, &mu, 2, append([]byte{0}, buf[:n]...)) != nil {
					return
				}
			}
			if err != nil {
				wsWrite(conn, &mu, 8, nil)
				conn.Close()
				return
			}
		}
	}()
	for {
		op, msg, err := wsRead(rw.Reader)
		if err != nil {
			return
		}
		switch op {
		case 8:
			return
		case 9:
			wsWrite(conn, &mu, 10, msg)
		case 2:
			if len(msg) > 1 && msg[0] == 0 {
				if _, err := backend.Write(msg[1:]); err != nil {
					return
				}
			}
		}
	}
}
