// Regenerates ../../http.jsonl: how Go's net/http answers raw requests as the Go image's
// Prometheus server (knative.dev/pkg/observability/metrics/prometheus: a ServeMux with the one
// route "GET /metrics", ReadHeaderTimeout 5 s), and how Go's HTTP client takes raw responses
// from a sink (the transport sdk-go posts through). Each case is sent over loopback; the first
// answer's status line, or what happened instead, is written down. Run by `just vectors`.
//
//	go run main.go OUT.jsonl
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

type line struct {
	// "scrape": a request to the metrics server; "sink": a response to a beat's POST.
	Side string `json:"side"`
	Name string `json:"name"`
	Raw  string `json:"raw"`
	Go   string `json:"go"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: main OUT.jsonl")
		os.Exit(2)
	}
	out, err := os.Create(os.Args[1])
	check(err)
	defer out.Close()
	encoder := json.NewEncoder(out)
	encoder.SetEscapeHTML(false)
	server := metricsServer()
	for _, c := range requests() {
		check(encoder.Encode(line{"scrape", c.name, c.raw, scrape(server, c.raw)}))
	}
	for _, c := range responses() {
		check(encoder.Encode(line{"sink", c.name, c.raw, post(c.raw)}))
	}
}

type testCase struct{ name, raw string }

// metricsServer serves the Go image's route on a loopback port, returning its address.
func metricsServer() string {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		io.WriteString(w, "heartbeats_events_total 1\n")
	}))
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go server.Serve(listener)
	return listener.Addr().String()
}

// scrape sends raw and says how the server answered: its status line (and Location or Allow
// when given), "no answer" within 2 s, "closed" without a byte, or "reset".
func scrape(address, raw string) string {
	conn, err := net.Dial("tcp", address)
	check(err)
	defer conn.Close()
	_, err = io.WriteString(conn, raw)
	check(err)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	// The request's method, for a HEAD answer's missing body.
	method, _, _ := strings.Cut(raw, " ")
	response, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	switch {
	case err == nil:
		defer response.Body.Close()
		_, err = io.Copy(io.Discard, response.Body)
		status := response.Proto + " " + response.Status
		if location := response.Header.Get("Location"); location != "" {
			status += " location " + location
		}
		if err != nil {
			status += " then " + class(err)
		}
		return status
	default:
		return class(err)
	}
}

func class(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "no answer"
	case strings.Contains(err.Error(), "connection reset"):
		return "reset"
	default:
		return "error: " + err.Error()
	}
}

// post answers one POST with raw (then closes) and says what Go's client made of it: "status N"
// with the body read to its end, or "error: ..." for a response it refused.
func post(raw string) string {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer listener.Close()
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		reader := bufio.NewReader(conn)
		request, err := http.ReadRequest(reader)
		if err != nil {
			return
		}
		io.Copy(io.Discard, request.Body)
		io.WriteString(conn, raw)
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.CloseWrite()
		}
		// Let the client read everything before the close.
		time.Sleep(500 * time.Millisecond)
	}()
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{}}
	url := "http://" + listener.Addr().String() + "/"
	response, err := client.Post(url, "application/json", bytes.NewReader([]byte(`{"id":1}`)))
	if err != nil {
		return "error: " + strings.TrimPrefix(err.Error(), "Post \""+url+"\": ")
	}
	defer response.Body.Close()
	_, err = io.Copy(io.Discard, response.Body)
	if err != nil {
		return fmt.Sprintf("status %d then error: %v", response.StatusCode, err)
	}
	return fmt.Sprintf("status %d", response.StatusCode)
}

func requests() []testCase {
	h := "Host: x\r\n"
	many := strings.Repeat("X-A: 1\r\n", 100)
	big := "X-Big: " + strings.Repeat("a", 20000) + "\r\n"
	body := strings.Repeat("b", 100000)
	return []testCase{
		{"get", "GET /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"head", "HEAD /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"post", "POST /metrics HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n"},
		{"put", "PUT /metrics HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n"},
		{"options", "OPTIONS /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"options-star", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n"},
		{"lower-case-method", "get /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"unknown-method", "FETCH /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"root", "GET / HTTP/1.1\r\n" + h + "\r\n"},
		{"other-path", "GET /nope HTTP/1.1\r\n" + h + "\r\n"},
		{"trailing-slash", "GET /metrics/ HTTP/1.1\r\n" + h + "\r\n"},
		{"upper-case-path", "GET /METRICS HTTP/1.1\r\n" + h + "\r\n"},
		{"query", "GET /metrics?x=1 HTTP/1.1\r\n" + h + "\r\n"},
		{"double-slash", "GET //metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"dot-segment", "GET /./metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"dot-dot-segment", "GET /a/../metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"percent-encoded", "GET /%6detrics HTTP/1.1\r\n" + h + "\r\n"},
		{"absolute-form", "GET http://x/metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"absolute-form-other-host", "GET http://elsewhere/metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"no-slash", "GET metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"no-host-1.1", "GET /metrics HTTP/1.1\r\n\r\n"},
		{"no-host-1.0", "GET /metrics HTTP/1.0\r\n\r\n"},
		{"two-hosts", "GET /metrics HTTP/1.1\r\n" + h + h + "\r\n"},
		{"bad-host", "GET /metrics HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"http-2.0", "GET /metrics HTTP/2.0\r\n" + h + "\r\n"},
		{"http-1.2", "GET /metrics HTTP/1.2\r\n" + h + "\r\n"},
		{"http-0.9", "GET /metrics\r\n\r\n"},
		{"double-space", "GET  /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"bare-lf", "GET /metrics HTTP/1.1\n" + "Host: x\n\n"},
		{"leading-crlf", "\r\nGET /metrics HTTP/1.1\r\n" + h + "\r\n"},
		{"hundred-headers", "GET /metrics HTTP/1.1\r\n" + h + many + "\r\n"},
		{"head-of-20-kb", "GET /metrics HTTP/1.1\r\n" + h + big + "\r\n"},
		{"no-colon", "GET /metrics HTTP/1.1\r\n" + h + "Bad Header\r\n\r\n"},
		{"space-before-colon", "GET /metrics HTTP/1.1\r\n" + h + "X-A : 1\r\n\r\n"},
		{"obs-fold", "GET /metrics HTTP/1.1\r\n" + h + "X-A: 1\r\n 2\r\n\r\n"},
		{"bad-name", "GET /metrics HTTP/1.1\r\n" + h + "X(A): 1\r\n\r\n"},
		{"nul-in-value", "GET /metrics HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n"},
		{"utf-8-in-value", "GET /metrics HTTP/1.1\r\n" + h + "X-A: é\r\n\r\n"},
		{"body", "GET /metrics HTTP/1.1\r\n" + h + "Content-Length: 5\r\n\r\nhello"},
		{"big-body", "GET /metrics HTTP/1.1\r\n" + h + "Content-Length: 100000\r\n\r\n" + body},
		{"bad-length", "GET /metrics HTTP/1.1\r\n" + h + "Content-Length: abc\r\n\r\n"},
		{"two-lengths", "GET /metrics HTTP/1.1\r\n" + h + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"chunked", "GET /metrics HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"gzip-encoding", "GET /metrics HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n"},
		{"expect-continue", "GET /metrics HTTP/1.1\r\n" + h + "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"},
		{"connection-close", "GET /metrics HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n"},
		{"upgrade-h2c", "GET /metrics HTTP/1.1\r\n" + h + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"},
		{"not-http", "NOT HTTP\r\n\r\n"},
	}
}

func responses() []testCase {
	ok := "HTTP/1.1 200 OK\r\n"
	empty := "Content-Length: 0\r\n\r\n"
	return []testCase{
		{"ok", ok + empty},
		{"accepted-no-length", "HTTP/1.1 202 Accepted\r\n\r\n"},
		{"no-content", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"no-reason", "HTTP/1.1 200\r\n" + empty},
		{"empty-reason", "HTTP/1.1 200 \r\n" + empty},
		{"odd-reason", "HTTP/1.1 200 Fine By Me\r\n" + empty},
		{"http-1.0", "HTTP/1.0 200 OK\r\n\r\n"},
		{"bare-lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
		{"continue-first", "HTTP/1.1 100 Continue\r\n\r\n" + ok + empty},
		{"early-hints-first", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"},
		{"unknown-1xx-first", "HTTP/1.1 199 Odd\r\n\r\n" + ok + empty},
		{"six-1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6) + ok + empty},
		{"switching-protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
		{"four-digit-status", "HTTP/1.1 2000 OK\r\n" + empty},
		{"two-digit-status", "HTTP/1.1 20 OK\r\n" + empty},
		{"status-099", "HTTP/1.1 099 Odd\r\n" + empty},
		{"status-600", "HTTP/1.1 600 Odd\r\n" + empty},
		{"status-299", "HTTP/1.1 299 Odd\r\n" + empty},
		{"http-2", "HTTP/2 200\r\n" + empty},
		{"http-1.2", "HTTP/1.2 200 OK\r\n" + empty},
		{"lower-case-version", "http/1.1 200 OK\r\n" + empty},
		{"leading-crlf", "\r\n" + ok + empty},
		{"no-colon", ok + "Bad Header\r\n" + empty},
		{"space-before-colon", ok + "X-A : 1\r\n" + empty},
		{"obs-fold", ok + "X-A: 1\r\n 2\r\n" + empty},
		{"nul-in-value", ok + "X-A: a\x00b\r\n" + empty},
		{"bad-length", ok + "Content-Length: abc\r\n\r\n"},
		{"two-lengths", ok + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"same-length-twice", ok + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n"},
		{"length-list", ok + "Content-Length: 0, 0\r\n\r\n"},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"chunked-and-length", ok + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"gzip-encoding", ok + "Transfer-Encoding: gzip\r\n\r\n"},
		{"body-to-close", ok + "\r\nsome body"},
		{"short-body", ok + "Content-Length: 10\r\n\r\nshort"},
		{"head-of-70-kb", ok + "X-Big: " + strings.Repeat("a", 70000) + "\r\n" + empty},
		{"not-http", "NOT HTTP\r\n\r\n"},
		{"nothing", ""},
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
