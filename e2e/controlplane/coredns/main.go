// Cluster DNS for the test cluster: CoreDNS with only the plugins a
// cluster's DNS needs (Services and pods of cluster.local from the API
// server), so that pods on the real node resolve Service names as they do
// on any cluster. CoreDNS's documented way to choose plugins at compile
// time: import them and list them, in CoreDNS's plugin order.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
