//! A 3-node JetStream cluster on loopback ports for one test: each node a
//! [`NatsServer`] with its own store, routes to the others and an HTTP
//! monitoring port; any node can be killed, restarted, paused (SIGSTOP)
//! and resumed. The harness's own clients know every node.

use std::time::Duration;

use crate::eventually;
use crate::nats::{NatsServer, free_port, server_binary};

pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    monitor_ports: Vec<u16>,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until JetStream answers through every
    /// one (a meta leader is elected).
    pub async fn start(size: usize) -> NatsCluster {
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::with_capacity(size);
        for index in 0..size {
            let config = format!(
                "server_name: n{index}\nhttp: 127.0.0.1:{monitor}\n\
                 cluster {{\n  name: tidegate\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
                monitor = monitor_ports[index],
                route = route_ports[index],
            );
            let mut node = NatsServer::prepare(client_ports[index], &config, server_binary());
            node.spawn();
            nodes.push(node);
        }
        let cluster = NatsCluster {
            nodes,
            monitor_ports,
        };
        for node in &cluster.nodes {
            node.wait_ready().await;
        }
        cluster
    }

    /// Every node's URL, comma-separated (what `nats.url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Settings that know every node.
    pub fn settings(&self) -> broker::NatsSettings {
        broker::NatsSettings::for_url(&self.urls(), "tidegate-test").expect("loopback URLs")
    }

    /// A JetStream context through any live node.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        broker::Connection::open(&self.settings())
            .await
            .expect("connecting to the cluster")
            .jetstream
    }

    /// The node a client named `name` is connected to (from each node's
    /// `/connz`), if any.
    pub async fn node_serving(&self, name: &str) -> Option<usize> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        for (index, port) in self.monitor_ports.iter().enumerate() {
            let Ok(response) = http
                .get(format!("http://127.0.0.1:{port}/connz"))
                .send()
                .await
            else {
                continue;
            };
            let Ok(connz) = response.json::<serde_json::Value>().await else {
                continue;
            };
            let serving = connz["connections"]
                .as_array()
                .is_some_and(|connections| connections.iter().any(|c| c["name"] == name));
            if serving {
                return Some(index);
            }
        }
        None
    }

    /// The server name of the deliveries stream's leader.
    pub async fn stream_leader(&self, stream: &str) -> String {
        let jetstream = self.jetstream().await;
        eventually(Duration::from_secs(20), "a stream leader", || {
            let jetstream = jetstream.clone();
            async move {
                let mut stream = jetstream.get_stream(stream).await.ok()?;
                let info = stream.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            }
        })
        .await
    }

    /// The index of the node named `server_name` (`n<index>`).
    pub fn index_of(&self, server_name: &str) -> usize {
        server_name
            .strip_prefix('n')
            .and_then(|index| index.parse().ok())
            .expect("nodes are named n<index>")
    }
}
