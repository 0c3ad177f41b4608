#!/usr/bin/env python3
"""A CRI client for weavice's containerd tests, speaking CRI v1 over gRPC the
way a kubelet does (PyPI container-runtime-interface-api; Debian has no crictl).

    cri.py SOCKET run-pod NAME NAMESPACE [HOSTPORT:CONTAINERPORT ...]   -> {"id", "ips"}
    cri.py SOCKET start POD_ID POD_NAME NAMESPACE NAME IMAGE ARG...     -> {"id"}
    cri.py SOCKET exec CONTAINER_ID ARG...                              -> its stdout; its exit code
    cri.py SOCKET stop-pod POD_ID | remove-pod POD_ID
    cri.py SOCKET pods                                                  -> [{"id", "name", "state"}]
    cri.py SOCKET bench N [HOSTPORT:CONTAINERPORT]   -> {"run", "stop", "remove"}: each RPC's ms, N pods
                                                        in turn (in one process: no interpreter start timed)

The pod's UID is derived from its name so that start can rebuild the
sandbox's metadata, which the kubelet sends again with CreateContainer (port
mappings are not sent again: containerd uses them only at RunPodSandbox).
"""
import json
import sys
import time
import uuid

import grpc
from cri_api.v1 import api_pb2 as api
from cri_api.v1 import api_pb2_grpc as rpc

TIMEOUT = 60


def sandbox_config(name, namespace, ports=()):
    mappings = []
    for p in ports:
        host, container = p.split(":")
        mappings.append(api.PortMapping(protocol=api.TCP, container_port=int(container), host_port=int(host)))
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(
            name=name, namespace=namespace, uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}.{name}")), attempt=0
        ),
        hostname=name,
        port_mappings=mappings,
        linux=api.LinuxPodSandboxConfig(
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=api.POD, pid=api.CONTAINER, ipc=api.POD)
            )
        ),
    )


def main(argv):
    sock, verb, args = argv[1], argv[2], argv[3:]
    runtime = rpc.RuntimeServiceStub(grpc.insecure_channel("unix://" + sock))
    if verb == "run-pod":
        name, namespace, ports = args[0], args[1], args[2:]
        pod = runtime.RunPodSandbox(api.RunPodSandboxRequest(config=sandbox_config(name, namespace, ports)), timeout=TIMEOUT)
        net = runtime.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=pod.pod_sandbox_id), timeout=TIMEOUT).status.network
        ips = [net.ip] + [i.ip for i in net.additional_ips]
        print(json.dumps({"id": pod.pod_sandbox_id, "ips": ips}))
    elif verb == "start":
        pod_id, pod_name, namespace, name, image, command = args[0], args[1], args[2], args[3], args[4], args[5:]
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=0), image=api.ImageSpec(image=image), command=command
        )
        created = runtime.CreateContainer(
            api.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config(pod_name, namespace)
            ),
            timeout=TIMEOUT,
        )
        runtime.StartContainer(api.StartContainerRequest(container_id=created.container_id), timeout=TIMEOUT)
        print(json.dumps({"id": created.container_id}))
    elif verb == "exec":
        reply = runtime.ExecSync(api.ExecSyncRequest(container_id=args[0], cmd=args[1:], timeout=10), timeout=TIMEOUT)
        sys.stdout.buffer.write(reply.stdout)
        sys.stderr.buffer.write(reply.stderr)
        return reply.exit_code
    elif verb == "stop-pod":
        runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=args[0]), timeout=TIMEOUT)
    elif verb == "remove-pod":
        runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=args[0]), timeout=TIMEOUT)
    elif verb == "bench":
        times = {"run": [], "stop": [], "remove": []}
        for i in range(int(args[0])):
            config = sandbox_config(f"bench-{i}", "bench", args[1:])
            t = time.perf_counter()
            pod = runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config), timeout=TIMEOUT).pod_sandbox_id
            times["run"].append((time.perf_counter() - t) * 1000)
            for step, call, request in (
                ("stop", runtime.StopPodSandbox, api.StopPodSandboxRequest),
                ("remove", runtime.RemovePodSandbox, api.RemovePodSandboxRequest),
            ):
                t = time.perf_counter()
                call(request(pod_sandbox_id=pod), timeout=TIMEOUT)
                times[step].append((time.perf_counter() - t) * 1000)
        print(json.dumps(times))
    elif verb == "pods":
        items = runtime.ListPodSandbox(api.ListPodSandboxRequest(), timeout=TIMEOUT).items
        print(json.dumps([{"id": p.id, "name": p.metadata.name, "state": api.PodSandboxState.Name(p.state)} for p in items]))
    else:
        print(f"cri.py: unknown verb {verb}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except grpc.RpcError as e:
        print(f"cri.py {' '.join(sys.argv[2:])}: {e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
