//! A 3-node JetStream cluster on loopback ports for one test: each node a
//! [`NatsServer`] with its own store, routes to the others and an HTTP
//! monitoring port; any node can be killed, restarted, paused (SIGSTOP)
//! and resumed. The harness's own clients know every node.

use std::time::Duration;

use crate::eventually;
use crate::nats::{NatsServer, free_port, server_binary};
use crate::netns::Hosts;

pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    /// `host:port` of each node's HTTP monitoring.
    monitors: Vec<String>,
}

impl NatsCluster {
    /// Starts `size` nodes on loopback and waits until JetStream answers
    /// through every one (a meta leader is elected).
    pub async fn start(size: usize) -> NatsCluster {
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = (0..size)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let monitors: Vec<String> = (0..size)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let nodes = (0..size)
            .map(|index| {
                let config = node_config(index, &monitors[index], &routes[index], &routes);
                NatsServer::prepare(client_ports[index], &config, server_binary())
            })
            .collect();
        NatsCluster::launch(nodes, monitors).await
    }

    /// Starts one node per host of `hosts` (each in its namespace, clients
    /// on its client address, routes over the cluster network), so that a
    /// node can be partitioned from its peers while clients reach it.
    pub async fn start_on(hosts: &Hosts) -> NatsCluster {
        let size = hosts.size();
        let routes: Vec<String> = (0..size)
            .map(|index| format!("{}:6222", hosts.cluster_address(index)))
            .collect();
        let monitors: Vec<String> = (0..size)
            .map(|index| format!("{}:8222", hosts.client_address(index)))
            .collect();
        let nodes = (0..size)
            .map(|index| {
                let config = node_config(index, &monitors[index], &routes[index], &routes);
                NatsServer::prepare(4222, &config, server_binary())
                    .in_namespace(hosts.namespace(index), hosts.client_address(index))
            })
            .collect();
        NatsCluster::launch(nodes, monitors).await
    }

    async fn launch(mut nodes: Vec<NatsServer>, monitors: Vec<String>) -> NatsCluster {
        for node in &mut nodes {
            node.spawn();
        }
        let cluster = NatsCluster { nodes, monitors };
        for node in &cluster.nodes {
            node.wait_ready().await;
        }
        cluster
    }

    /// SIGKILLs every node (a whole-cluster crash).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Starts every stopped node again with its store, then waits for
    /// JetStream through each (a node alone has no quorum, so they start
    /// together).
    pub async fn restart_all(&mut self) {
        for node in &mut self.nodes {
            if !node.is_running() {
                node.spawn();
            }
        }
        for node in &self.nodes {
            node.wait_ready().await;
        }
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
        for (index, monitor) in self.monitors.iter().enumerate() {
            let Ok(response) = http.get(format!("http://{monitor}/connz")).send().await else {
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

    /// Each node's own view of `stream` (messages and last sequence, from
    /// its monitoring endpoint), `None` where the node does not answer or
    /// holds no replica: replicas that disagree for long are split.
    pub async fn local_states(&self, stream: &str) -> Vec<Option<(u64, u64)>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let mut states = Vec::new();
        for monitor in &self.monitors {
            let state = async {
                let jsz: serde_json::Value = http
                    .get(format!("http://{monitor}/jsz?streams=true"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let streams = jsz["account_details"][0]["stream_detail"].as_array()?;
                let found = streams.iter().find(|entry| entry["name"] == stream)?;
                Some((
                    found["state"]["messages"].as_u64()?,
                    found["state"]["last_seq"].as_u64()?,
                ))
            }
            .await;
            states.push(state);
        }
        states
    }

    /// The delivery id of every message in the deliveries stream, read from
    /// its leader once every replica has caught up and every node's own
    /// copy agrees with it (after a fault a replica may still be
    /// recovering; one that keeps disagreeing is a split brain, and this
    /// panics).
    pub async fn stored_delivery_ids(&self) -> Vec<String> {
        let stream_name = schemas::streams::DELIVERIES_STREAM;
        let jetstream = self.jetstream().await;
        // Right after a heal or a restart the API may time out while the
        // meta leader settles: ask again rather than fail on the first try.
        let stream = eventually(
            Duration::from_secs(30),
            "the stream's info answering",
            || {
                let jetstream = jetstream.clone();
                async move { jetstream.get_stream(stream_name).await.ok() }
            },
        )
        .await;
        // Nodes that run: a killed node's replica is offline, not behind.
        let running: Vec<String> = (0..self.nodes.len())
            .filter(|index| self.nodes[*index].is_running())
            .map(|index| format!("n{index}"))
            .collect();
        let running = &running;
        let state = eventually(
            Duration::from_secs(60),
            "every replica current and agreeing",
            || {
                let mut stream = stream.clone();
                async move {
                    let info = stream.info().await.ok()?;
                    let placement = info.cluster.as_ref()?;
                    placement.leader.as_ref()?;
                    let caught_up = placement
                        .replicas
                        .iter()
                        .filter(|replica| running.contains(&replica.name))
                        .all(|replica| {
                            replica.current && !replica.offline && replica.lag.unwrap_or(0) == 0
                        });
                    let expected = (info.state.messages, info.state.last_sequence);
                    let agree = self
                        .local_states(stream_name)
                        .await
                        .iter()
                        .zip(&self.nodes)
                        .filter(|(_, node)| node.is_running())
                        .all(|(local, _)| *local == Some(expected));
                    (caught_up && agree).then(|| info.state.clone())
                }
            },
        )
        .await;
        let mut ids = Vec::with_capacity(usize::try_from(state.messages).unwrap_or(0));
        if state.messages == 0 {
            return ids;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                let read = broker::envelope::read(
                    message.subject.as_str(),
                    Some(&message.headers),
                    &message.payload,
                )
                .unwrap_or_else(|error| {
                    panic!(
                        "message {sequence} on {} is not an envelope ({error}): {:?} {:?}",
                        message.subject,
                        message.headers,
                        String::from_utf8_lossy(&message.payload[..message.payload.len().min(200)])
                    )
                });
                ids.push(read.envelope.id);
            }
        }
        ids
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

/// One node's configuration: its name, monitoring, and routes to all.
fn node_config(index: usize, monitor: &str, route: &str, routes: &[String]) -> String {
    let routes = routes
        .iter()
        .map(|route| format!("nats-route://{route}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "server_name: n{index}\nhttp: {monitor}\n\
         cluster {{\n  name: tidegate\n  listen: {route}\n  routes: [{routes}]\n}}\n"
    )
}
