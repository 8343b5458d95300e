package jstest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// nodeEnv carries a cluster node's settings to the child process that runs it.
const nodeEnv = "JSTEST_CLUSTER_NODE"

// nodeConfig is one node of a test cluster.
type nodeConfig struct {
	Name     string   `json:"name"`
	Port     int      `json:"port"`
	Cluster  int      `json:"cluster_port"`
	Routes   []string `json:"routes"`
	StoreDir string   `json:"store_dir"`
}

// RunNodeIfChild runs a cluster node and exits when this process was
// started by Cluster to be one; otherwise it returns at once. Call it
// first in the TestMain of every package that uses Cluster.
func RunNodeIfChild() {
	raw := os.Getenv(nodeEnv)
	if raw == "" {
		return
	}
	var nc nodeConfig
	if err := json.Unmarshal([]byte(raw), &nc); err != nil {
		fmt.Println("FAIL bad node config:", err)
		os.Exit(2)
	}
	ns, err := server.NewServer(nc.options())
	if err != nil {
		fmt.Println("FAIL new server:", err)
		os.Exit(2)
	}
	ns.Start()
	if !ns.ReadyForConnections(50 * time.Second) {
		fmt.Println("FAIL not ready (port in use?)")
		os.Exit(2)
	}
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() { // the parent holds stdin open: its death ends the node
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		close(stdinClosed)
	}()
	select {
	case <-sig:
	case <-stdinClosed:
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	os.Exit(0)
}

func (nc nodeConfig) options() *server.Options {
	o := &server.Options{
		ServerName: nc.Name, JetStream: true, StoreDir: nc.StoreDir,
		Host: "127.0.0.1", Port: nc.Port, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "jstest", Host: "127.0.0.1", Port: nc.Cluster},
	}
	o.Routes = server.RoutesFromStr(strings.Join(nc.Routes, ","))
	return o
}

// Node is one server of a test cluster, running in a child process.
type Node struct {
	// URL is the node's client URL.
	URL string

	t      testing.TB
	cfg    nodeConfig
	cmd    *exec.Cmd
	stdin  *os.File
	stderr string
	exited chan struct{}
}

// ClusterOf is a running JetStream cluster of real nats-server processes.
type ClusterOf struct {
	Nodes []*Node
}

// Cluster starts an n-node JetStream cluster on loopback: each node is a
// child process (this test binary, re-executed; see RunNodeIfChild) with
// random ports, routes to every other node and its file store in a
// temporary directory. It returns once the cluster has a JetStream meta
// leader, and stops every node when the test ends. Kill ends a node with
// SIGKILL.
func Cluster(t testing.TB, n int) *ClusterOf {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2*n)
	c := &ClusterOf{}
	for i := range n {
		nc := nodeConfig{
			Name: fmt.Sprintf("n%d", i+1), Port: ports[2*i], Cluster: ports[2*i+1],
			StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
		}
		for j := range n {
			if j != i {
				nc.Routes = append(nc.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[2*j+1]))
			}
		}
		c.Nodes = append(c.Nodes, &Node{t: t, cfg: nc, URL: fmt.Sprintf("nats://127.0.0.1:%d", nc.Port)})
	}
	t.Cleanup(func() {
		for _, node := range c.Nodes {
			node.stop()
		}
	})
	waits := make([]func(), len(c.Nodes))
	for i, node := range c.Nodes { // start together: each waits for routes
		waits[i] = node.launch()
	}
	for _, wait := range waits {
		wait()
	}
	c.WaitForMetaLeader(t, 60*time.Second)
	return c
}

// URLs returns every node's client URL, comma-separated.
func (c *ClusterOf) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Connect returns a JetStream client connected to every node, closed when
// the test ends.
func (c *ClusterOf) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, natsjs.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("jstest: connect to cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatalf("jstest: jetstream: %v", err)
	}
	return nc, js
}

// WaitForMetaLeader waits until the cluster has an elected meta leader
// that can place a stream on every node: a probe stream with one replica
// per node is created and deleted.
func (c *ClusterOf) WaitForMetaLeader(t testing.TB, timeout time.Duration) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("jstest: connect to cluster: %v", err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatalf("jstest: jetstream: %v", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "JSTEST_PROBE", Subjects: []string{"jstest.probe"}, Replicas: len(c.Nodes)})
		if err == nil || errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) {
			err = js.DeleteStream(ctx, "JSTEST_PROBE")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jstest: no JetStream meta leader after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the server; no event to wait on
	}
}

// Kill ends node i with SIGKILL, as a crash would, and waits for its exit.
// It may be called from any goroutine.
func (c *ClusterOf) Kill(i int) error {
	n := c.Nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("jstest: kill %s: %w", n.cfg.Name, err)
	}
	<-n.exited
	return nil
}

// launch starts the node's process and returns a function that waits until
// it is ready, failing the test if it does not get there.
func (n *Node) launch() func() {
	n.t.Helper()
	raw, err := json.Marshal(n.cfg)
	if err != nil {
		n.t.Fatalf("jstest: %v", err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		n.t.Fatalf("jstest: pipe: %v", err)
	}
	stderrPath := filepath.Join(filepath.Dir(n.cfg.StoreDir), n.cfg.Name+".stderr")
	stderr, err := os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatalf("jstest: %v", err)
	}
	defer stderr.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(raw))
	cmd.Stdin, cmd.Stderr = stdinR, stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatalf("jstest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("jstest: start node %s: %v", n.cfg.Name, err)
	}
	_ = stdinR.Close()
	n.cmd, n.stdin, n.stderr, n.exited = cmd, stdinW, stderrPath, make(chan struct{})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	exited := n.exited
	ready := make(chan string, 1)
	go func() {
		s := <-line // cmd.Wait closes stdout: read it first
		ready <- s
		_ = cmd.Wait()
		close(exited)
	}()
	return func() {
		n.t.Helper()
		var got string
		select {
		case got = <-ready:
		case <-time.After(60 * time.Second): // a loaded machine starts a race-enabled binary slowly
			got = "no answer within 60s"
		}
		if got != "READY" {
			_ = cmd.Process.Kill()
			<-exited
			msg, _ := os.ReadFile(stderrPath)
			if got == "" {
				got = "exited without a word (does TestMain call jstest.RunNodeIfChild?)"
			}
			n.t.Fatalf("jstest: node %s: %s\n%s", n.cfg.Name, got, msg)
		}
	}
}

// stop ends the node (SIGTERM, then SIGKILL after 10s) if it runs.
func (n *Node) stop() {
	if n.cmd == nil {
		return
	}
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
	_ = n.stdin.Close()
}

// freePorts returns k distinct free loopback ports. Another process may
// take one before the node binds it; the node then fails to start with a
// clear message.
func freePorts(t testing.TB, k int) []int {
	t.Helper()
	var lns []net.Listener
	ports := make([]int, 0, k)
	for range k {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("jstest: free port: %v", err)
		}
		lns = append(lns, ln)
		addr, ok := ln.Addr().(*net.TCPAddr)
		if !ok {
			t.Fatalf("jstest: not a TCP address: %v", ln.Addr())
		}
		ports = append(ports, addr.Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}
