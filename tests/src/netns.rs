//! Hosts of our own for partition tests: each cluster node in a network
//! namespace with two links — a point-to-point link to the test's own
//! namespace (clients), and a link to a cluster bridge the nodes route
//! over. Hosts reach each other only over the cluster bridge, so cutting a
//! host's cluster link partitions it: a process inside that host (an
//! ingress beside its node) still reaches its node, but nothing else.
//! Needs root (or CAP_NET_ADMIN) and iproute2; removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

/// A bridge, `size` namespaces and their links, named after this process
/// so that parallel tests never share them.
pub struct Hosts {
    prefix: String,
    size: usize,
    subnet: (u8, u8),
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Hosts {
    /// `size` hosts; host `i` has `client_address(i)` (reached from the
    /// test's namespace) and `cluster_address(i)` (reached by the others).
    pub fn create(size: usize) -> Hosts {
        let pid = std::process::id();
        // Two /24s in 10.0.0.0/8 that depend on the pid: 10.a.b.0/24 split
        // into /30 client links, and the cluster network 10.a.(b+1).0/24.
        let subnet = (
            u8::try_from(100 + (pid / 128) % 100).expect("fits"),
            u8::try_from((pid % 128) * 2).expect("fits"),
        );
        let hosts = Hosts {
            prefix: format!("tg{}", pid % 100_000),
            size,
            subnet,
        };
        hosts.remove();
        let bridge = hosts.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["link", "set", &bridge, "up"]);
        for index in 0..size {
            let namespace = hosts.namespace(index);
            ip(&["netns", "add", &namespace]);
            ip(&["-n", &namespace, "link", "set", "lo", "up"]);
            // The client link: a /30 between the test's namespace and the host.
            let outside = hosts.link("c", index);
            let inside = format!("{outside}i");
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &namespace]);
            ip(&[
                "addr",
                "add",
                &format!("{}/30", hosts.client_gateway(index)),
                "dev",
                &outside,
            ]);
            ip(&["link", "set", &outside, "up"]);
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{}/30", hosts.client_address(index)),
                "dev",
                &inside,
            ]);
            ip(&["-n", &namespace, "link", "set", &inside, "up"]);
            // The cluster link, on the bridge the hosts share.
            let outside = hosts.link("r", index);
            let inside = format!("{outside}i");
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &namespace]);
            ip(&["link", "set", &outside, "master", &bridge]);
            ip(&["link", "set", &outside, "up"]);
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{}/24", hosts.cluster_address(index)),
                "dev",
                &inside,
            ]);
            ip(&["-n", &namespace, "link", "set", &inside, "up"]);
        }
        hosts
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn namespace(&self, index: usize) -> String {
        format!("{}n{index}", self.prefix)
    }

    /// The host's address on its client link.
    pub fn client_address(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, self.quad(index) + 2)
    }

    /// The test namespace's end of host `index`'s client link.
    pub fn client_gateway(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, self.quad(index) + 1)
    }

    fn quad(&self, index: usize) -> u8 {
        u8::try_from(index * 4).expect("few hosts")
    }

    pub fn cluster_address(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            10,
            self.subnet.0,
            self.subnet.1 + 1,
            10 + u8::try_from(index).expect("few hosts"),
        )
    }

    /// Cuts host `index` off the cluster network (its peers); clients
    /// still reach it.
    pub fn partition(&self, index: usize) {
        ip(&["link", "set", &self.link("r", index), "down"]);
    }

    pub fn heal(&self, index: usize) {
        ip(&["link", "set", &self.link("r", index), "up"]);
    }

    fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    fn link(&self, side: &str, index: usize) -> String {
        format!("{}{side}{index}", self.prefix)
    }

    fn remove(&self) {
        for index in 0..self.size {
            drop(
                Command::new("ip")
                    .args(["netns", "del", &self.namespace(index)])
                    .output(),
            );
            for side in ["c", "r"] {
                drop(
                    Command::new("ip")
                        .args(["link", "del", &self.link(side, index)])
                        .output(),
                );
            }
        }
        drop(
            Command::new("ip")
                .args(["link", "del", &self.bridge()])
                .output(),
        );
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.remove();
    }
}
