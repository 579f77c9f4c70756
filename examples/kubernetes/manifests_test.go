package kubernetes_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/gproxy/gproxy/parser"
)

// TestManifests decodes every manifest strictly with the Kubernetes API
// types (an unknown or misplaced field is an error), checks that they fit
// together (selectors, ports, probes, the reloader's pid file), and that
// the ConfigMap's nginx.conf passes gproxy's configuration check.
func TestManifests(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var (
		cms      []corev1.ConfigMap
		deps     []appsv1.Deployment
		services []corev1.Service
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			var err error
			switch meta.Kind {
			case "ConfigMap":
				var x corev1.ConfigMap
				err = yaml.UnmarshalStrict(doc, &x)
				cms = append(cms, x)
			case "Deployment":
				var x appsv1.Deployment
				err = yaml.UnmarshalStrict(doc, &x)
				deps = append(deps, x)
			case "Service":
				var x corev1.Service
				err = yaml.UnmarshalStrict(doc, &x)
				services = append(services, x)
			default:
				t.Fatalf("%s #%d: unexpected kind %q", f, i, meta.Kind)
			}
			if err != nil {
				t.Errorf("%s #%d (%s): %v", f, i, meta.Kind, err)
			}
		}
	}
	if len(cms) != 1 || len(deps) != 2 || len(services) != 2 {
		t.Fatalf("%d ConfigMaps, %d Deployments, %d Services; want 1, 2, 2", len(cms), len(deps), len(services))
	}

	// The configuration passes gproxy -t (its parser), with the backend
	// name left to the resolver at run time.
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(cms[0].Data["nginx.conf"]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := parser.Load(conf, parser.Options{Prefix: dir + "/", LookupHost: func(context.Context, string) ([]string, error) { return []string{"10.0.0.1"}, nil }})
	if err != nil {
		t.Fatalf("nginx.conf in the ConfigMap: %v", err)
	}

	var gp *appsv1.Deployment
	for i := range deps {
		if deps[i].Name == "gproxy" {
			gp = &deps[i]
		}
	}
	if gp == nil {
		t.Fatal("no gproxy Deployment")
	}
	spec := gp.Spec.Template.Spec
	c := spec.Containers[0]
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Error("gproxy needs readiness and liveness probes on /healthz")
	}
	if !strings.Contains(cms[0].Data["nginx.conf"], "location = /healthz {\n        access_log off;\n        return 200") &&
		!strings.Contains(cms[0].Data["nginx.conf"], "return 200") {
		t.Error("no return 200 location for the probes")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("gproxy has no resource requests")
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("gproxy must run as non-root")
	}
	if cfg.PID != "/run/gproxy/gproxy.pid" {
		t.Errorf("pid file %q, the reloader reads /run/gproxy/gproxy.pid", cfg.PID)
	}
	for _, s := range services {
		sel := s.Spec.Selector["app.kubernetes.io/name"]
		found := false
		for _, d := range deps {
			if d.Spec.Template.Labels["app.kubernetes.io/name"] == sel {
				found = true
			}
		}
		if !found {
			t.Errorf("Service %s selects nothing", s.Name)
		}
		if s.Name == "grpc-backend" && s.Spec.ClusterIP != "None" {
			t.Error("the backends' Service must be headless for resolve")
		}
	}
}
