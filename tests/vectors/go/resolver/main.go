// Regenerates ../../resolver.jsonl: what Go's pure resolver (net.Resolver with PreferGo, as the
// Go image resolves its sink) answers in each scenario of scenarios.json, asked of the test
// suite's own fake name servers (examples/fake_dns.rs), with the scenario's resolv.conf and hosts
// file mounted over /etc in a mount namespace of its own. Run by `just vectors` (as root, for
// unshare and mount).
//
//	go run main.go FAKE_DNS_BINARY scenarios.json OUT.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type scenario struct {
	Name       string            `json:"name"`
	Why        string            `json:"why,omitempty"`
	Lookup     string            `json:"lookup"`
	ResolvConf string            `json:"resolv_conf"`
	Hosts      string            `json:"hosts"`
	Servers    []json.RawMessage `json:"servers"`
	Go         *outcome          `json:"go,omitempty"`
}

type outcome struct {
	Addresses []string `json:"addresses,omitempty"`
	// not_found, timeout or failure, as the error's IsNotFound and IsTimeout say.
	Error     string `json:"error,omitempty"`
	Text      string `json:"text,omitempty"`
	ElapsedMs int64  `json:"elapsed_ms"`
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "lookup" {
		lookup(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: main FAKE_DNS scenarios.json OUT.jsonl")
		os.Exit(2)
	}
	fakeDNS, in, out := os.Args[1], os.Args[2], os.Args[3]
	text, err := os.ReadFile(in)
	check(err)
	var scenarios []scenario
	check(json.Unmarshal(text, &scenarios))
	self, err := os.Executable()
	check(err)
	file, err := os.Create(out)
	check(err)
	defer file.Close()
	for _, s := range scenarios {
		s.Go = run(self, fakeDNS, s)
		line, err := json.Marshal(s)
		check(err)
		fmt.Fprintf(file, "%s\n", line)
		fmt.Fprintf(os.Stderr, "%-40s %+v\n", s.Name, *s.Go)
	}
}

// run asks Go's resolver in a namespace of its own, the fake servers of `s` listening.
func run(self, fakeDNS string, s scenario) *outcome {
	dir, err := os.MkdirTemp("", "resolver-vector-")
	check(err)
	defer os.RemoveAll(dir)
	servers, err := json.Marshal(s.Servers)
	check(err)
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		check(os.WriteFile(path, []byte(text), 0o644))
		return path
	}
	serversPath := write("servers.json", string(servers))
	resolvConf := write("resolv.conf", s.ResolvConf)
	hosts := write("hosts", s.Hosts)
	nsswitch := write("nsswitch.conf", "hosts: files dns\n")
	fake := exec.Command(fakeDNS, serversPath)
	stdin, err := fake.StdinPipe()
	check(err)
	stdout, err := fake.StdoutPipe()
	check(err)
	fake.Stderr = os.Stderr
	check(fake.Start())
	port, err := bufio.NewReader(stdout).ReadString('\n')
	check(err)
	port = strings.TrimSpace(port)
	script := fmt.Sprintf("mount --bind %s /etc/resolv.conf && mount --bind %s /etc/hosts && "+
		"{ [ ! -e /etc/nsswitch.conf ] || mount --bind %s /etc/nsswitch.conf; } && exec %s lookup \"$0\" %s",
		resolvConf, hosts, nsswitch, self, port)
	ask := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, s.Lookup)
	ask.Env = append(os.Environ(), "GODEBUG=netdns=go")
	ask.Stderr = os.Stderr
	answer, err := ask.Output()
	check(err)
	stdin.Close()
	_ = fake.Wait()
	var o outcome
	check(json.Unmarshal(answer, &o))
	return &o
}

// lookup is run in the namespace: Go's resolver, every name server's port 53 moved to `port`.
func lookup(name, port string) {
	resolver := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := time.Now()
	addrs, err := resolver.LookupIPAddr(ctx, name)
	o := outcome{ElapsedMs: time.Since(started).Milliseconds()}
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			o.Error = "not_found"
		case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
			o.Error = "timeout"
		default:
			o.Error = "failure"
		}
		o.Text = err.Error()
	}
	for _, a := range addrs {
		o.Addresses = append(o.Addresses, a.String())
	}
	line, err := json.Marshal(o)
	check(err)
	fmt.Println(string(line))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
