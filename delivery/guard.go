package delivery

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"code.dny.dev/ssrf"
)

// ErrBlockedTarget is returned (wrapped) when a delivery would connect to an
// internal address.
var ErrBlockedTarget = errors.New("delivery: target address is internal and not allowed")

// Prefixes whose IPv6 addresses carry an IPv4 address. The IPv4-mapped form
// (::ffff:0:0/96) is not listed: Check unmaps it and judges it as IPv4.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")          // IPv4-compatible, deprecated (RFC 4291, section 2.5.5.1)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")   // NAT64 well-known prefix (RFC 6052)
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48") // local-use NAT64 (RFC 8215), /48 layout of RFC 6052, section 2.2
	sixToFour      = netip.MustParsePrefix("2002::/16")      // 6to4 (RFC 3056)
	teredo         = netip.MustParsePrefix("2001::/32")      // Teredo (RFC 4380)
)

// Guard refuses connections to addresses that are not globally reachable.
// Its deny list is code.dny.dev/ssrf's, generated from the IANA IPv4 and IPv6
// Special-Purpose Address Registries: every IPv4 entry (private, shared
// 100.64.0.0/10, loopback, link-local, documentation, benchmarking, reserved
// 240.0.0.0/4 with the limited broadcast, ...) plus multicast; every IPv6
// address outside global unicast 2000::/3 (loopback, unspecified, ULA,
// link-local, site-local, multicast, ...) and the registry's entries inside it
// (6to4, Teredo, documentation, ...).
//
// An IPv6 address that carries an IPv4 address (IPv4-mapped or -compatible,
// NAT64, 6to4, Teredo) is refused when the IPv4 address is. The NAT64
// well-known prefix 64:ff9b::/96 is globally reachable (IANA), so an address in
// it is judged on its IPv4 address alone: 64:ff9b::808:808 passes, which is
// how an IPv6-only host reaches 8.8.8.8, and 64:ff9b::a9fe:a9fe does not.
//
// An address in an allowed prefix (--allow-targets) passes whatever it is.
// The guard checks the address actually dialled, after name resolution
// (Control), so a public name that resolves to an internal address is caught
// too. A Guard is immutable and safe for concurrent use.
type Guard struct {
	allow  []netip.Prefix
	deny4  []netip.Prefix
	global netip.Prefix
	deny6  []netip.Prefix
}

// NewGuard returns a guard that lets the allowed prefixes through.
func NewGuard(allow []netip.Prefix) *Guard {
	return &Guard{
		allow:  append([]netip.Prefix(nil), allow...),
		deny4:  append([]netip.Prefix(nil), ssrf.IPv4DeniedPrefixes...),
		global: ssrf.IPv6GlobalUnicast,
		deny6:  append([]netip.Prefix(nil), ssrf.IPv6DeniedPrefixes...),
	}
}

// Allowed reports whether a connection to ip may be made.
func (g *Guard) Allowed(ip netip.Addr) bool { return g.Check(ip) == nil }

// Check returns nil when a connection to ip may be made, and otherwise an
// error wrapping ErrBlockedTarget that names the range refusing it. An
// invalid (zero) address is refused.
func (g *Guard) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: no address", ErrBlockedTarget)
	}
	ip = ip.WithZone("").Unmap() // a zoned address matches no prefix
	if g.allowed(ip) {
		return nil
	}
	if ip.Is4() {
		if p, denied := g.denied4(ip); denied {
			return fmt.Errorf("%w: %s is in %s", ErrBlockedTarget, ip, p)
		}
		return nil
	}
	for _, v4 := range embeddedIPv4(ip) {
		if g.allowed(v4) {
			continue
		}
		if p, denied := g.denied4(v4); denied {
			return fmt.Errorf("%w: %s carries %s, which is in %s", ErrBlockedTarget, ip, v4, p)
		}
	}
	if nat64.Contains(ip) {
		return nil // globally reachable; its IPv4 address passed above
	}
	if !g.global.Contains(ip) {
		return fmt.Errorf("%w: %s is outside IPv6 global unicast %s", ErrBlockedTarget, ip, g.global)
	}
	for _, p := range g.deny6 {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in %s", ErrBlockedTarget, ip, p)
		}
	}
	return nil
}

func (g *Guard) allowed(ip netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (g *Guard) denied4(ip netip.Addr) (netip.Prefix, bool) {
	for _, p := range g.deny4 {
		if p.Contains(ip) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// embeddedIPv4 returns the IPv4 addresses that the IPv6 address ip carries by
// a transition scheme: one, two for Teredo (server and client), none for
// other addresses. :: and ::1 carry none.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	b := ip.As16()
	v4 := func(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }
	switch {
	case ipv4Compatible.Contains(ip) && !ip.IsUnspecified() && !ip.IsLoopback():
		return []netip.Addr{v4(b[12], b[13], b[14], b[15])}
	case nat64.Contains(ip):
		return []netip.Addr{v4(b[12], b[13], b[14], b[15])}
	case nat64Local.Contains(ip): // bits 64-71 are the zero "u" octet
		return []netip.Addr{v4(b[6], b[7], b[9], b[10])}
	case sixToFour.Contains(ip):
		return []netip.Addr{v4(b[2], b[3], b[4], b[5])}
	case teredo.Contains(ip): // server, then the client's address, inverted
		return []netip.Addr{v4(b[4], b[5], b[6], b[7]), v4(^b[12], ^b[13], ^b[14], ^b[15])}
	}
	return nil
}

// Control is a net.Dialer Control function enforcing the guard on the
// resolved address of every connection.
func (g *Guard) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrBlockedTarget, address)
	}
	return g.Check(ap.Addr())
}
