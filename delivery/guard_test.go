package delivery_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
)

// specialPurpose is derived from the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (plus multicast and site-local), independently of the
// list the guard uses, so a narrower list in a dependency update fails here.
// Each range has addresses inside it and, where the neighbour is public
// unicast, just outside it.
var specialPurpose = []struct {
	prefix, source  string
	inside, outside string // space-separated addresses
}{
	// IPv4 Special-Purpose Address Registry, plus multicast.
	{"0.0.0.0/8", "this network, RFC 791; 0.0.0.0/32 RFC 1122",
		"0.0.0.0 0.1.2.3 0.255.255.255", "1.0.0.1"},
	{"10.0.0.0/8", "private use, RFC 1918",
		"10.0.0.0 10.255.255.255", "9.255.255.255 11.0.0.0"},
	{"100.64.0.0/10", "shared address space, RFC 6598",
		"100.64.0.0 100.100.100.200 100.127.255.255", "100.63.255.255 100.128.0.0"},
	{"127.0.0.0/8", "loopback, RFC 1122",
		"127.0.0.1 127.255.255.255", "126.255.255.255 128.0.0.0"},
	{"169.254.0.0/16", "link local, RFC 3927",
		"169.254.0.1 169.254.169.254", "169.253.255.255 169.255.0.0"},
	{"172.16.0.0/12", "private use, RFC 1918",
		"172.16.0.0 172.31.255.255", "172.15.255.255 172.32.0.0"},
	{"192.0.0.0/24", "IETF protocol assignments, RFC 6890 (entries of RFC 7335, 7600, 7723, 8155, 8880 inside)",
		"192.0.0.0 192.0.0.8 192.0.0.9 192.0.0.10 192.0.0.170 192.0.0.171 192.0.0.255", "191.255.255.255 192.0.1.0"},
	{"192.0.2.0/24", "documentation TEST-NET-1, RFC 5737",
		"192.0.2.1", "192.0.3.0"},
	{"192.31.196.0/24", "AS112-v4, RFC 7535",
		"192.31.196.1", "192.31.195.255 192.31.197.0"},
	{"192.52.193.0/24", "AMT, RFC 7450",
		"192.52.193.1", "192.52.192.255 192.52.194.0"},
	{"192.88.99.0/24", "deprecated 6to4 relay anycast, RFC 7526",
		"192.88.99.1", "192.88.98.255 192.88.100.0"},
	{"192.168.0.0/16", "private use, RFC 1918",
		"192.168.0.0 192.168.255.255", "192.167.255.255 192.169.0.0"},
	{"192.175.48.0/24", "direct delegation AS112 service, RFC 7534",
		"192.175.48.1", "192.175.47.255 192.175.49.0"},
	{"198.18.0.0/15", "benchmarking, RFC 2544",
		"198.18.0.0 198.18.0.1 198.19.255.255", "198.17.255.255 198.20.0.0"},
	{"198.51.100.0/24", "documentation TEST-NET-2, RFC 5737",
		"198.51.100.1", "198.51.99.255 198.51.101.0"},
	{"203.0.113.0/24", "documentation TEST-NET-3, RFC 5737",
		"203.0.113.1", "203.0.112.255 203.0.114.0"},
	{"240.0.0.0/4", "reserved, RFC 1112",
		"240.0.0.0 240.0.0.1 254.255.255.255", ""},
	{"255.255.255.255/32", "limited broadcast, RFC 8190 / RFC 919",
		"255.255.255.255", ""},
	{"224.0.0.0/4", "multicast, RFC 5771 (not in the special-purpose registry)",
		"224.0.0.1 239.255.255.255", "223.255.255.255"},

	// IPv6 Special-Purpose Address Registry, plus site-local and multicast.
	{"::1/128", "loopback, RFC 4291",
		"::1", ""},
	{"::/128", "unspecified, RFC 4291",
		"::", ""},
	{"::ffff:0:0/96", "IPv4-mapped, RFC 4291: judged on the IPv4 address",
		"::ffff:127.0.0.1 ::ffff:a9fe:a9fe ::ffff:10.0.0.1", "::ffff:8.8.8.8"},
	{"::/96", "IPv4-compatible, deprecated, RFC 4291",
		"::127.0.0.1 ::8.8.8.8", ""},
	{"64:ff9b::/96", "NAT64, RFC 6052: globally reachable, judged on the IPv4 address",
		"64:ff9b::a9fe:a9fe 64:ff9b::7f00:1 64:ff9b::a00:1", "64:ff9b::808:808"},
	{"64:ff9b:1::/48", "local-use NAT64, RFC 8215",
		"64:ff9b:1::1 64:ff9b:1:808:8:800::", ""},
	{"100::/64", "discard-only, RFC 6666",
		"100::1", ""},
	{"100:0:0:1::/64", "dummy IPv6 prefix, RFC 9780",
		"100:0:0:1::1", ""},
	{"2001::/23", "IETF protocol assignments, RFC 2928",
		"2001::1 2001:1ff:ffff::1", "2001:200::1"},
	{"2001::/32", "Teredo, RFC 4380",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", ""},
	{"2001:1::1-3", "PCP, TURN, DNS-SD SRP anycast /128s, RFC 7723, 8155, 9665",
		"2001:1::1 2001:1::2 2001:1::3", ""},
	{"2001:2::/48", "benchmarking, RFC 5180",
		"2001:2::1", ""},
	{"2001:3::/32", "AMT, RFC 7450",
		"2001:3::1", ""},
	{"2001:4:112::/48", "AS112-v6, RFC 7535",
		"2001:4:112::1", ""},
	{"2001:10::/28", "deprecated ORCHID, RFC 4843",
		"2001:10::1", ""},
	{"2001:20::/28", "ORCHIDv2, RFC 7343",
		"2001:20::1", ""},
	{"2001:30::/28", "drone remote ID DETs, RFC 9374",
		"2001:30::1", ""},
	{"2001:db8::/32", "documentation, RFC 3849",
		"2001:db8::1 2001:db8:ffff:ffff::1", "2001:db7:ffff::1 2001:db9::1"},
	{"2002::/16", "6to4, RFC 3056",
		"2002:808:808::1 2002:a9fe:a9fe::1", "2003::1"},
	{"2620:4f:8000::/48", "direct delegation AS112 service, RFC 7534",
		"2620:4f:8000::1", "2620:4f:7fff::1 2620:4f:8001::1"},
	{"3fff::/20", "documentation, RFC 9637",
		"3fff::1 3fff:fff:ffff::1", "3fff:1000::1"},
	{"5f00::/16", "segment routing SIDs, RFC 9602",
		"5f00::1", ""},
	{"fc00::/7", "unique local, RFC 4193",
		"fc00::1 fd00:ec2::254 fdff:ffff::1", ""},
	{"fe80::/10", "link-local unicast, RFC 4291",
		"fe80::1 fe80::1%eth0 febf::1", ""},
	{"fec0::/10", "site-local, deprecated, RFC 3879",
		"fec0::1 feff::1", ""},
	{"ff00::/8", "multicast, RFC 4291",
		"ff02::1 ff05::1:3 ff0e::1", ""},
}

// attackerSpellings are the literal addresses of issue 7: the nine the
// standard library's predicates let through, then twelve common ones.
var attackerSpellings = []string{
	"100.64.0.1", "100.100.100.200", "198.18.0.1", "192.0.0.1", "240.0.0.1", "255.255.255.255",
	"64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "fec0::1",
	"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "0.0.0.0",
	"::1", "::", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "fe80::1", "fd00:ec2::254",
}

var public = []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2001:4860:4860::8888",
	"::ffff:8.8.8.8", "64:ff9b::808:808"}

func TestGuardSpecialPurposeRanges(t *testing.T) {
	t.Parallel()
	g := delivery.NewGuard(nil)
	for _, r := range specialPurpose {
		t.Run(r.prefix, func(t *testing.T) {
			t.Parallel()
			for _, s := range strings.Fields(r.inside) {
				ip := netip.MustParseAddr(s)
				err := g.Check(ip)
				require.ErrorIs(t, err, delivery.ErrBlockedTarget, "%s is in %s (%s)", s, r.prefix, r.source)
				require.False(t, g.Allowed(ip), s)
				require.ErrorIs(t, g.Control("tcp", netip.AddrPortFrom(ip, 443).String(), nil), delivery.ErrBlockedTarget, s)
			}
			for _, s := range strings.Fields(r.outside) {
				require.NoError(t, g.Check(netip.MustParseAddr(s)), "%s is outside %s", s, r.prefix)
			}
		})
	}
}

func TestGuardAttackerSpellings(t *testing.T) {
	t.Parallel()
	require.Len(t, attackerSpellings, 21)
	g := delivery.NewGuard(nil)
	for _, s := range attackerSpellings {
		require.ErrorIs(t, g.Check(netip.MustParseAddr(s)), delivery.ErrBlockedTarget, s)
	}
	for _, s := range public {
		require.NoError(t, g.Check(netip.MustParseAddr(s)), s)
		require.NoError(t, g.Control("tcp", netip.AddrPortFrom(netip.MustParseAddr(s), 443).String(), nil), s)
	}
}

func TestGuardNamesTheEmbeddedIPv4(t *testing.T) {
	t.Parallel()
	g := delivery.NewGuard(nil)
	for ip, carried := range map[string]string{
		"64:ff9b::a9fe:a9fe":                      "169.254.169.254", // NAT64
		"64:ff9b:1:a9fe:a9:fe00::":                "169.254.169.254", // local-use NAT64, /48 layout
		"2002:a9fe:a9fe::1":                       "169.254.169.254", // 6to4
		"2001:0:4136:e378:8000:63bf:3fff:fdd2":    "192.0.2.45",      // Teredo client (inverted), RFC 4380's example
		"2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2":    "169.254.169.254", // Teredo server
		"::a9fe:a9fe":                             "169.254.169.254", // IPv4-compatible
		"::ffff:a9fe:a9fe":                        "169.254.169.254", // IPv4-mapped
		"0000:0000:0000:0000:0000:ffff:7f00:0001": "127.0.0.1",
	} {
		err := g.Check(netip.MustParseAddr(ip))
		require.ErrorIs(t, err, delivery.ErrBlockedTarget, ip)
		require.ErrorContains(t, err, carried, ip)
	}
}

func TestGuardAllowTargetsOverride(t *testing.T) {
	t.Parallel()
	g := delivery.NewGuard([]netip.Prefix{
		netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("fe80::/10"),
	})
	for _, s := range []string{"100.100.100.200", "127.0.0.1", "::ffff:127.0.0.1", "fd00:ec2::254", "fe80::1%eth0",
		"64:ff9b::7f00:1", // NAT64 of an allowed IPv4 address
	} {
		require.NoError(t, g.Check(netip.MustParseAddr(s)), s)
	}
	for _, s := range []string{"169.254.169.254", "10.0.0.1", "fc00::1", "64:ff9b::a9fe:a9fe",
		"2002:7f00:1::1", // 6to4 stays refused as a range even when its IPv4 address is allowed
	} {
		require.ErrorIs(t, g.Check(netip.MustParseAddr(s)), delivery.ErrBlockedTarget, "only the allowed prefixes pass: %s", s)
	}
	require.ErrorIs(t, g.Check(netip.Addr{}), delivery.ErrBlockedTarget, "the zero address")
	require.ErrorIs(t, g.Control("tcp", "not-an-address", nil), delivery.ErrBlockedTarget)
}

// dnsServer runs a UDP DNS responder on loopback that answers every A or
// AAAA query with addr when addr is of that family, and returns a resolver
// that asks only it.
func dnsServer(t *testing.T, addr netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			if resp := dnsAnswer(buf[:n], addr); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, pc.Close())
		<-done
	})
	server := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", server)
	}}
}

// dnsAnswer builds the response to a one-question query: the question and,
// when its type (A = 1, AAAA = 28) fits addr, one answer for it.
func dnsAnswer(q []byte, addr netip.Addr) []byte {
	const header = 12
	if len(q) < header {
		return nil
	}
	end := header
	for end < len(q) && q[end] != 0 { // the question's name, label by label
		end += int(q[end]) + 1
	}
	end += 5 // the root label, QTYPE, QCLASS
	if end > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[end-4:])
	var rdata []byte
	switch {
	case qtype == 1 && addr.Is4():
		a := addr.As4()
		rdata = a[:]
	case qtype == 28 && addr.Is6():
		a := addr.As16()
		rdata = a[:]
	}
	resp := []byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0} // id; response, recursion desired and available, no error; 1 question
	resp = append(resp, q[header:end]...)
	if rdata != nil {
		resp[7] = 1 // 1 answer: the name by pointer to the question, class IN, TTL 60
		resp = append(resp, 0xc0, header, byte(qtype>>8), byte(qtype), 0, 1, 0, 0, 0, 60, 0, byte(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

func TestDeliveryToANameResolvingInternallyIsBlockedAtDial(t *testing.T) {
	t.Parallel()
	srv, hits := receiver(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
	port := netip.MustParseAddrPort(srv.Listener.Addr().String()).Port()
	url := "http://hooks.example.com:" + strconv.Itoa(int(port)) + "/x"

	attempt := func(t *testing.T, resolvesTo string, allow ...netip.Prefix) delivery.Result {
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: allow,
			Resolver: dnsServer(t, netip.MustParseAddr(resolvesTo))})
		t.Cleanup(d.Close)
		return d.Attempt(context.Background(), testJob(t, "s"), testSub(t, url))
	}

	// Control: allowed, the name reaches the receiver through the test's resolver.
	res := attempt(t, "127.0.0.1", netip.MustParsePrefix("127.0.0.1/32"))
	require.Equal(t, delivery.ReasonSucceeded, res.Reason, "%v", res.Err)
	require.Len(t, hits, 1)
	<-hits

	for _, internal := range []string{"127.0.0.1", "100.100.100.200", "169.254.169.254", "64:ff9b::a9fe:a9fe"} {
		res := attempt(t, internal)
		require.Equal(t, delivery.ReasonBlockedTarget, res.Reason, "%s: %v", internal, res.Err)
		require.ErrorIs(t, res.Err, delivery.ErrBlockedTarget)
		require.ErrorContains(t, res.Err, netip.MustParseAddr(internal).String())
	}
	require.Empty(t, hits, "nothing reached the receiver")
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	// A second loopback address, outside the allowed 127.0.0.1/32.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	internalHits := make(chan struct{}, 4)
	internal := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { internalHits <- struct{}{} }))
	internal.Listener = ln
	internal.Start()
	t.Cleanup(internal.Close)
	allowed, allowedHits := receiver(t, func(http.ResponseWriter) {})

	for _, location := range []string{internal.URL + "/admin", "http://169.254.169.254/latest/meta-data/", allowed.URL + "/other"} {
		srv, hits := receiver(t, func(w http.ResponseWriter) {
			w.Header().Set("Location", location)
			w.WriteHeader(http.StatusFound)
		})
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second,
			AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
		t.Cleanup(d.Close)
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.NoError(t, res.Err, location)
		require.Equal(t, http.StatusFound, res.StatusCode, "the attempt's result is the redirect itself: %s", location)
		require.Equal(t, "http_302", res.Reason)
		require.Len(t, hits, 1)
	}
	// Attempt returns after the handlers ran, so a followed redirect would
	// have reached its target by now.
	require.Empty(t, internalHits, "no request reached the internal redirect target")
	require.Empty(t, allowedHits, "nor the allowed one")
}

func ExampleGuard_Check() {
	g := delivery.NewGuard(nil)
	fmt.Println(g.Check(netip.MustParseAddr("2002:a9fe:a9fe::1")))
	fmt.Println(g.Check(netip.MustParseAddr("64:ff9b::808:808")))
	// Output:
	// delivery: target address is internal and not allowed: 2002:a9fe:a9fe::1 carries 169.254.169.254, which is in 169.254.0.0/16
	// <nil>
}
