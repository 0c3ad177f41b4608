// cnitool: a minimal CNI runtime for weavice's tests and demo, written
// against Debian's packaged libcni (golang-github-appc-cni-dev), so it
// builds offline. Usage: cnitool add|check|del NETWORK NETNS
//
// Environment: NETCONFPATH (conflist directory, default /etc/cni/net.d),
// CNI_PATH (plugin directories), CNI_IFNAME (default eth0), CNI_ARGS
// (K=V;K=V), CAP_ARGS (JSON capability arguments), CNI_CONTAINERID
// (default: derived from NETNS), CNI_CACHE_DIR (libcni's result cache).
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cnitool: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: %s add|check|del NETWORK NETNS", filepath.Base(os.Args[0]))
	}
	verb, network, netns := os.Args[1], os.Args[2], os.Args[3]

	list, err := libcni.LoadConfList(env("NETCONFPATH", "/etc/cni/net.d"), network)
	if err != nil {
		fail("load network %q: %v", network, err)
	}

	var capArgs map[string]interface{}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &capArgs); err != nil {
			fail("CAP_ARGS is not a JSON object: %v", err)
		}
	}
	var cniArgs [][2]string
	if s := os.Getenv("CNI_ARGS"); s != "" {
		for _, pair := range strings.Split(s, ";") {
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 {
				fail("CNI_ARGS entry %q is not KEY=VALUE", pair)
			}
			cniArgs = append(cniArgs, [2]string{kv[0], kv[1]})
		}
	}

	containerID := os.Getenv("CNI_CONTAINERID")
	if containerID == "" {
		containerID = fmt.Sprintf("cnitool-%x", sha512.Sum512([]byte(netns)))[:28]
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    containerID,
		NetNS:          netns,
		IfName:         env("CNI_IFNAME", "eth0"),
		Args:           cniArgs,
		CapabilityArgs: capArgs,
		CacheDir:       os.Getenv("CNI_CACHE_DIR"),
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), rt.CacheDir, nil)
	ctx := context.Background()

	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("add: %v", err)
		}
		if result != nil {
			if err := result.Print(); err != nil {
				fail("print result: %v", err)
			}
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("check: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("del: %v", err)
		}
	default:
		fail("unknown verb %q: use add, check or del", verb)
	}
}
