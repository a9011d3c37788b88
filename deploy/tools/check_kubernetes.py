"""What the Kubernetes JSON schemas cannot see in deploy/kubernetes/.

Run by deploy/check.sh with the venv of deploy/tools/deploy-check.requirements.txt
(PyYAML). The schemas check each object alone; this checks the objects
against each other and against the binaries' configs:

- kustomization.yaml lists every manifest under tidegate/ and nothing missing;
- every ConfigMap, Secret, PVC and config key a Deployment names exists
  (Secrets in examples/secrets.yaml), and every TOML config parses and
  listens on the port its Deployment probes;
- every Service, HPA and PodDisruptionBudget selects or targets a Deployment;
- nats-values.yaml keeps deploy/nats/cluster/'s sync_interval and 3 nodes.

Prints one line per problem and exits 1 if there is any.
"""

import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"


def main() -> int:
    problems: list[str] = []
    kustomization = load_one(KUBERNETES / "kustomization.yaml")
    listed = [KUBERNETES / path for path in kustomization.get("resources", [])]
    on_disk = sorted((KUBERNETES / "tidegate").glob("*.yaml"))
    for path in listed:
        if not path.is_file():
            problems.append(f"kustomization.yaml lists {path.relative_to(ROOT)}, which does not exist")
    for path in on_disk:
        if path not in listed:
            problems.append(f"{path.relative_to(ROOT)} is not listed in kustomization.yaml")

    objects = [obj for path in listed if path.is_file() for obj in load_all(path)]
    secrets = {obj["metadata"]["name"]: obj for obj in load_all(KUBERNETES / "examples" / "secrets.yaml")}
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    config_maps = by_kind.get("ConfigMap", {})
    claims = by_kind.get("PersistentVolumeClaim", {})
    deployments = by_kind.get("Deployment", {})

    for name, data in config_maps.items():
        for key, text in (data.get("data") or {}).items():
            if key.endswith(".toml"):
                try:
                    tomllib.loads(text)
                except tomllib.TOMLDecodeError as error:
                    problems.append(f"ConfigMap {name} key {key}: invalid TOML: {error}")

    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        if not selector.items() <= labels.items():
            problems.append(f"Deployment {name}: selector does not match its pod labels")
        for volume in pod.get("volumes", []):
            problems += check_volume(name, volume, config_maps, secrets, claims)
        for container in pod["containers"]:
            problems += check_container(name, container, pod, config_maps, secrets)

    for kind in ("Service", "PodDisruptionBudget"):
        for name, obj in by_kind.get(kind, {}).items():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            if not any(
                selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                for d in deployments.values()
            ):
                problems.append(f"{kind} {name} selects no Deployment's pods")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        if target["kind"] != "Deployment" or target["name"] not in deployments:
            problems.append(f"HorizontalPodAutoscaler {name} targets a missing {target['kind']} {target['name']}")
        elif "replicas" in deployments[target["name"]]["spec"]:
            problems.append(f"Deployment {target['name']} sets replicas: every apply would undo its HPA")
    for name in deployments:
        if not any(h["spec"]["scaleTargetRef"]["name"] == name for h in by_kind.get("HorizontalPodAutoscaler", {}).values()):
            problems.append(f"Deployment {name} has no HorizontalPodAutoscaler")
        if not any(p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == name
                   for p in by_kind.get("PodDisruptionBudget", {}).values()):
            problems.append(f"Deployment {name} has no PodDisruptionBudget")

    problems += check_nats_values()
    for problem in problems:
        print(f"deploy/kubernetes: {problem}")
    return 1 if problems else 0


def check_volume(deployment, volume, config_maps, secrets, claims) -> list[str]:
    problems = []
    if "configMap" in volume:
        name = volume["configMap"]["name"]
        if name not in config_maps:
            return [f"Deployment {deployment}: ConfigMap {name} does not exist"]
        keys = (config_maps[name].get("data") or {}).keys()
        problems += [
            f"Deployment {deployment}: ConfigMap {name} has no key {item['key']}"
            for item in volume["configMap"].get("items", [])
            if item["key"] not in keys
        ]
    if "secret" in volume:
        name = volume["secret"]["secretName"]
        if name not in secrets:
            return [f"Deployment {deployment}: Secret {name} is not in examples/secrets.yaml"]
        keys = (secrets[name].get("stringData") or {}).keys()
        problems += [
            f"Deployment {deployment}: Secret {name} has no key {item['key']}"
            for item in volume["secret"].get("items", [])
            if item["key"] not in keys
        ]
    if "persistentVolumeClaim" in volume:
        name = volume["persistentVolumeClaim"]["claimName"]
        if name not in claims:
            problems.append(f"Deployment {deployment}: PersistentVolumeClaim {name} does not exist")
    return problems


def check_container(deployment, container, pod, config_maps, secrets) -> list[str]:
    problems = []
    mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"] for volume in pod.get("volumes", [])}
    problems += [f"Deployment {deployment}: mount {m} has no volume" for m in sorted(mounts - volumes)]
    for source in container.get("envFrom", []):
        name = source.get("secretRef", {}).get("name")
        if name and name not in secrets:
            problems.append(f"Deployment {deployment}: Secret {name} is not in examples/secrets.yaml")
    for variable in container.get("env", []):
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference and reference["key"] not in (secrets.get(reference["name"], {}).get("stringData") or {}):
            problems.append(
                f"Deployment {deployment}: {variable['name']} reads Secret {reference['name']} key "
                f"{reference['key']}, which examples/secrets.yaml does not have"
            )
    # The config the command names must exist and listen on the probed port.
    command = container.get("command", [])
    config_path = command[command.index("--config") + 1] if "--config" in command else None
    if config_path is None:
        return problems + [f"Deployment {deployment}: the command names no --config"]
    key = pathlib.PurePosixPath(config_path).name
    texts = [cm["data"][key] for cm in config_maps.values() if key in (cm.get("data") or {})]
    if not texts:
        return problems + [f"Deployment {deployment}: no ConfigMap has {key}"]
    listen = tomllib.loads(texts[0]).get("listen", "")
    port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
    container_ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        if probe not in container:
            problems.append(f"Deployment {deployment}: no {probe}")
            continue
        probed = container[probe]["httpGet"]["port"]
        probed = container_ports.get(probed, probed)
        if probed != port:
            problems.append(f"Deployment {deployment}: {probe} probes port {probed}, {key} listens on {listen!r}")
    context = container.get("securityContext", {})
    if not context.get("readOnlyRootFilesystem") or context.get("allowPrivilegeEscalation", True):
        problems.append(f"Deployment {deployment}: root filesystem writable or privilege escalation allowed")
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"Deployment {deployment}: runAsNonRoot is not set")
    if not {"requests", "limits"} <= container.get("resources", {}).keys():
        problems.append(f"Deployment {deployment}: resources need requests and limits")
    return problems


def check_nats_values() -> list[str]:
    values = load_one(KUBERNETES / "nats-values.yaml")
    cluster_conf = (ROOT / "deploy" / "nats" / "cluster" / "cluster.conf").read_text()
    match = re.search(r"^\s*sync_interval:\s*(\S+)", cluster_conf, re.MULTILINE)
    chosen = match.group(1) if match else None
    config = values.get("config", {})
    jetstream = config.get("jetstream", {})
    problems = []
    if jetstream.get("merge", {}).get("sync_interval") != chosen:
        problems.append(f"nats-values.yaml: sync_interval differs from deploy/nats/cluster/cluster.conf ({chosen})")
    if config.get("cluster", {}).get("replicas") != 3 or not config.get("cluster", {}).get("enabled"):
        problems.append("nats-values.yaml: the cluster is not enabled with 3 replicas")
    file_store = jetstream.get("fileStore", {})
    if not (jetstream.get("enabled") and file_store.get("enabled") and file_store.get("pvc", {}).get("enabled")):
        problems.append("nats-values.yaml: JetStream file storage on PVCs is not enabled")
    return problems


def load_one(path: pathlib.Path) -> dict:
    with path.open() as file:
        return yaml.safe_load(file)


def load_all(path: pathlib.Path) -> list[dict]:
    with path.open() as file:
        return [obj for obj in yaml.safe_load_all(file) if obj]


if __name__ == "__main__":
    sys.exit(main())
