package delivery

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrBlockedTarget is returned (wrapped) when a delivery would connect to an
// internal address.
var ErrBlockedTarget = errors.New("delivery: target address is internal and not allowed")

// Guard refuses connections to internal addresses: loopback, private,
// link-local (169.254.169.254 included), multicast and unspecified, IPv4 and
// IPv6, unless the address lies in an allowed prefix. It checks the address
// actually dialled, after name resolution, so a public name that resolves to
// an internal address is caught too.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a guard that lets the allowed prefixes through.
func NewGuard(allow []netip.Prefix) *Guard {
	return &Guard{allow: append([]netip.Prefix(nil), allow...)}
}

// thisNetwork is 0.0.0.0/8, "this host on this network": connecting to it
// reaches the local machine on Linux.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// Allowed reports whether a connection to ip may be made.
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	internal := ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		ip.IsUnspecified() || thisNetwork.Contains(ip)
	return !internal
}

// Control is a net.Dialer Control function enforcing the guard on the
// resolved address of every connection.
func (g *Guard) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrBlockedTarget, address)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrBlockedTarget, ap.Addr())
	}
	return nil
}
