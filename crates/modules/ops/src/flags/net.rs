//! IP addresses and CIDR blocks, for `remoteAddress` and `IN_CIDR`.

use std::net::IpAddr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or a single address
/// (`127.0.0.1` is `127.0.0.1/32`). Held in IPv6 space, IPv4 as IPv4-mapped
/// (`::ffff:a.b.c.d`), so `1.2.3.0/24` and `::ffff:1.2.3.0/120` are the same
/// block and both contain `1.2.3.4` however it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    bits: u128,
    prefix: u8,
}

impl IpNet {
    /// `None` for anything that is not an address with an optional prefix
    /// length within the address's width.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = addr.parse::<IpAddr>().ok()?;
        // IPv4 prefixes count from bit 96 of the mapped form.
        let (width, offset) = if addr.is_ipv4() { (32, 96) } else { (128, 0) };
        let prefix = match prefix {
            None => width,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
            Some(_) => return None,
        };
        (prefix <= width).then_some(Self { bits: v6_bits(addr), prefix: prefix + offset })
    }

    /// Whether `ip` is in the block.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let differing = self.bits ^ v6_bits(ip);
        differing.checked_shr(u32::from(128 - self.prefix)).unwrap_or(0) == 0
    }
}

fn v6_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The context's address, if it is one.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        parse_ip(s).expect("test address")
    }

    #[test]
    fn blocks() {
        let net = IpNet::parse("160.33.0.0/16").expect("valid");
        assert!(net.contains(ip("160.33.255.1")));
        assert!(!net.contains(ip("160.34.0.1")));
        assert!(net.contains(ip("::ffff:160.33.0.9")));
        assert!(!net.contains(ip("2001:db8::1")));
        assert!(!IpNet::parse("0.0.0.0/0").expect("valid").contains(ip("2001:db8::1")), "IPv4 blocks hold IPv4 only");
        assert!(IpNet::parse("::ffff:0:0/96").expect("valid").contains(ip("1.2.3.4")));
        assert!(IpNet::parse("::ffff:1.2.3.0/120").expect("valid").contains(ip("1.2.3.4")));
        assert!(IpNet::parse("0.0.0.0/0").expect("valid").contains(ip("8.8.8.8")));
        assert!(IpNet::parse("::/0").expect("valid").contains(ip("2001:db8::1")));
        assert!(IpNet::parse("2001:db8::1").expect("valid").contains(ip("2001:db8::1")));
        assert!(!IpNet::parse("2001:db8::1").expect("valid").contains(ip("2001:db8::2")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in
            ["", "/", "127.invalid", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-1", "bad::cidr"]
        {
            assert_eq!(IpNet::parse(bad), None, "{bad}");
        }
    }
}
