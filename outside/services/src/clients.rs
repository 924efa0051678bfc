//! Connections per client address: a relay sees each device's address and caps how many
//! connections (and the tunnels they become) one address holds at once, so one client cannot
//! take every slot. Addresses are kept only while a connection is open, and never logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts of open connections per client address, with a cap.
#[derive(Debug)]
pub struct ClientSlots {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's hold on its address's count; released when the last clone is dropped.
/// The server puts it in each request's extensions so a tunnel made from the connection keeps
/// holding it (see [`crate::tunnel::open`]).
#[derive(Debug)]
pub struct ClientSlot {
    slots: Arc<ClientSlots>,
    address: IpAddr,
}

impl ClientSlots {
    /// At most `cap` connections per address.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `address`, or `None` when it holds `cap` already.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Arc<ClientSlot>> {
        let address = canonical(address);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Arc::new(ClientSlot {
            slots: self.clone(),
            address,
        }))
    }

    /// Connections open from `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&canonical(address)).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// An IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`) counts as that IPv4 address; an
/// IPv6 client counts by its /64, since one host usually holds a whole /64.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_address_and_release() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let one = slots.take(a).unwrap();
        let two = slots.take(a).unwrap();
        assert!(slots.take(a).is_none());
        assert!(slots.take(b).is_some());
        // The same client over IPv6-mapped IPv4 is the same address.
        assert!(slots.take("::ffff:192.0.2.1".parse().unwrap()).is_none());
        drop(one);
        assert_eq!(slots.open_from(a), 1);
        let _three = slots.take(a).unwrap();
        drop(two);
        assert_eq!(slots.open_from(a), 1);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let slots = ClientSlots::new(1);
        let _held = slots.take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(slots.take("2001:db8:1:2::ffff".parse().unwrap()).is_none());
        assert!(slots.take("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
