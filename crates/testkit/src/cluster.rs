//! A cluster of three nats-servers on loopback, for tests of a broker node lost and back.
//!
//! Each node is a [`NatsServer`] running the project's `nats/nats-server.conf`, with the same
//! passwords on every node (a client may fail over to any of them), a server name of its own
//! (`node0`, `node1`, `node2`) and a `cluster {}` block as Kubernetes has it
//! (`k8s/base/nats/nats.conf`): a cluster port of its own, routes to the other nodes that log
//! in as the user `route` (a route bypasses every user permission, so it must not be open), and
//! `no_advertise`, so a client knows only the servers of its own `NATS_URL`.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::Client;

use crate::nats::{Launch, new_passwords, random_password};
use crate::process::{START_ATTEMPTS, StartError};
use crate::{NatsServer, POLL, eventually, free_port, http_client};

/// Nodes in a [`Cluster`].
pub const NODES: usize = 3;

/// How long the routes between the nodes may take to come up (a node that comes back is
/// routed to at once by its own configured routes; the others retry theirs every second).
const ROUTES_WITHIN: Duration = Duration::from_secs(30);

/// The cluster's name, the same on every node.
const CLUSTER_NAME: &str = "chocominer-test";

/// Three nats-servers routed to each other. Dropping it kills them all.
pub struct Cluster {
    nodes: Vec<NatsServer>,
    route_ports: Vec<u16>,
    route_password: String,
}

impl Cluster {
    /// Starts the three nodes and waits until each has routes to the other two.
    pub async fn start() -> Cluster {
        crate::init_tracing();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            // Every node's ports are chosen up front: each names the others' cluster ports.
            let passwords = new_passwords();
            let routes: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
            let route_password = random_password();
            let starts = (0..NODES).map(|i| {
                let mut launch = Launch::new(&node_conf(i, &routes, &route_password));
                launch.passwords = passwords.clone();
                NatsServer::try_start(launch)
            });
            let mut nodes = Vec::with_capacity(NODES);
            for started in futures::future::join_all(starts).await {
                match started {
                    Ok(node) => nodes.push(node),
                    Err(StartError::PortTaken(message)) => last_error = Some(message),
                    Err(StartError::Failed(message)) => panic!("{message}"),
                }
            }
            if nodes.len() == NODES {
                let cluster = Cluster {
                    nodes,
                    route_ports: routes,
                    route_password,
                };
                cluster.wait_for_routes().await;
                return cluster;
            }
            // Some port was taken: the nodes that did start go, and all start again on others.
        }
        panic!(
            "nats cluster: ports taken on all {START_ATTEMPTS} attempts; last: {}",
            last_error.unwrap_or_default()
        );
    }

    /// Node `i` (0, 1 or 2).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Kills node `i` outright (SIGKILL): its clients and the messages in its buffers are lost
    /// with it. Its ports are kept for [`Cluster::restart`].
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i].kill().await;
    }

    /// Starts node `i` again on the same ports and waits until every running node is routed to
    /// every other one again.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
        self.wait_for_routes().await;
    }

    /// The server names node `i` has a route to now, per its `/routez`.
    pub async fn routes(&self, i: usize) -> BTreeSet<String> {
        let url = format!("{}/routez", self.nodes[i].monitor_url());
        let Ok(response) = http_client().get(url).send().await else {
            return BTreeSet::new();
        };
        let text = response.text().await.unwrap_or_default();
        let routez: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        // Several connections per pair of nodes (a route pool): one name each.
        routez["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|route| route["remote_name"].as_str().map(str::to_owned))
            .collect()
    }

    /// Node `i`'s cluster (route) port, on 127.0.0.1.
    pub fn route_port(&self, i: usize) -> u16 {
        self.route_ports[i]
    }

    /// The password of the user `route`, which the nodes' routes log in as.
    pub fn route_password(&self) -> &str {
        &self.route_password
    }

    /// The cluster's name, which a route must give to be taken.
    pub fn cluster_name(&self) -> &'static str {
        CLUSTER_NAME
    }

    /// The server name of node `i`.
    pub fn name(i: usize) -> String {
        format!("node{i}")
    }

    /// Waits until every running node has a route to every other running node.
    pub async fn wait_for_routes(&self) {
        let running: Vec<usize> = (0..NODES).filter(|&i| self.nodes[i].is_running()).collect();
        for &i in &running {
            let wanted: BTreeSet<String> = (running.iter().copied())
                .filter(|&j| j != i)
                .map(Cluster::name)
                .collect();
            let what = format!("{} routed to {wanted:?}", Cluster::name(i));
            let wanted = &wanted;
            eventually(&what, ROUTES_WITHIN, POLL, || async move {
                (self.routes(i).await == *wanted).then_some(())
            })
            .await;
        }
    }

    /// Every node's client URL, node `i`'s first, then the others in order, comma-separated:
    /// a `NATS_URL` that connects to node `i` and fails over to the others.
    pub fn url_list_from(&self, i: usize) -> String {
        let order = std::iter::once(i).chain((0..NODES).filter(|&j| j != i));
        order
            .map(|j| self.nodes[j].url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The NATS options of a stage connecting to node `i` first (and failing over to the
    /// others) as `role`: `--nats-url <list> --nats-user <role> --nats-password-file <file>`.
    pub fn nats_args(&self, i: usize, role: &str) -> Vec<String> {
        let mut args = vec!["--nats-url".to_owned(), self.url_list_from(i)];
        args.extend(self.nodes[i].user_args(role));
        args
    }

    /// A client of the test connected to node `i` only, as `role`.
    pub async fn connect_as(&self, i: usize, role: &str) -> Client {
        self.nodes[i].connect_as(role).await
    }
}

/// Node `i`'s lines after the project's file: its name, and its cluster port and routes to the
/// others (`routes[j]` is node `j`'s cluster port).
fn node_conf(i: usize, routes: &[u16], route_password: &str) -> String {
    let others: Vec<String> = (0..routes.len())
        .filter(|&j| j != i)
        .map(|j| {
            format!(
                "nats-route://route:{route_password}@127.0.0.1:{}",
                routes[j]
            )
        })
        .collect();
    format!(
        "server_name: {name}\n\
         cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{port}\n  \
         no_advertise: true\n  \
         authorization {{ user: route, password: \"{route_password}\", timeout: 2 }}\n  \
         routes: [{routes}]\n}}\n",
        name = Cluster::name(i),
        port = routes[i],
        routes = others.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_routes_to_the_others() {
        let conf = node_conf(1, &[7001, 7002, 7003], "secret");
        assert!(conf.starts_with("server_name: node1\n"), "{conf}");
        assert!(conf.contains("listen: 127.0.0.1:7002\n"), "{conf}");
        assert!(
            conf.contains("authorization { user: route, password: \"secret\""),
            "{conf}"
        );
        assert!(
            conf.contains(
                "routes: [nats-route://route:secret@127.0.0.1:7001, \
                 nats-route://route:secret@127.0.0.1:7003]"
            ),
            "{conf}"
        );
    }
}
