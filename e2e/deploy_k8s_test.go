package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/e2e/harness"
)

// k8sObject is the part of a Kubernetes manifest the checks read. Unknown
// fields are ignored, so it reads Deployments, Services, ConfigMaps and
// PersistentVolumeClaims alike.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		// Deployment
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
		// Service (a Deployment's selector is a matchLabels mapping)
		Selector map[string]any `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      *int  `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// k8sObjects reads every document of every YAML file in deploy/kubernetes
// except the kustomization.
func k8sObjects(t *testing.T) map[string][]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(harness.RepoRoot(t), "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	byKind := map[string][]k8sObject{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(r)
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
		r.Close()
	}
	return byKind
}

// k8sConfig returns gatehouse.yaml from the ConfigMap.
func k8sConfig(t *testing.T) string {
	t.Helper()
	for _, cm := range k8sObjects(t)["ConfigMap"] {
		if c, ok := cm.Data["gatehouse.yaml"]; ok {
			return c
		}
	}
	t.Fatal("no ConfigMap with gatehouse.yaml in deploy/kubernetes")
	return ""
}

// TestKubernetesManifests checks the security settings of the Deployment
// and that the manifests agree with each other and with the config.
func TestKubernetesManifests(t *testing.T) {
	objs := k8sObjects(t)
	if len(objs["Deployment"]) != 1 {
		t.Fatalf("%d Deployments, want 1", len(objs["Deployment"]))
	}
	d := objs["Deployment"][0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != "Recreate" {
		t.Errorf("replicas %v, strategy %q: want 1 replica with Recreate (the embedded store has one writer)", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template.Spec
	isTrue := func(b *bool) bool { return b != nil && *b }
	isFalse := func(b *bool) bool { return b != nil && !*b }
	if !isTrue(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("pod securityContext: want runAsNonRoot: true and a non-zero runAsUser")
	}
	if pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod seccompProfile = %q, want RuntimeDefault", pod.SecurityContext.SeccompProfile.Type)
	}
	if !isFalse(pod.AutomountServiceAccountToken) {
		t.Errorf("automountServiceAccountToken must be false: Gatehouse does not talk to the API server")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if !isTrue(sc.ReadOnlyRootFilesystem) || !isFalse(sc.AllowPrivilegeEscalation) || isTrue(sc.Privileged) {
		t.Errorf("container securityContext: want readOnlyRootFilesystem true, allowPrivilegeEscalation false, not privileged")
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities drop %q add %q, want drop [ALL] and nothing added", sc.Capabilities.Drop, sc.Capabilities.Add)
	}

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "admin" {
			t.Errorf("%s probe: want httpGet %s on port admin", p.name, p.path)
		}
	}

	// The config the pod runs must match the pod: listeners on the
	// container ports, data_dir on the persistent volume, the config file
	// from the ConfigMap.
	cfg := parseConfigNoFiles(t, k8sConfig(t))
	for name, addr := range map[string]string{"https": cfg.Listen.HTTPS, "ssh": cfg.Listen.SSH, "admin": cfg.Listen.Admin} {
		if want := ":" + strconv.Itoa(ports[name]); addr != want {
			t.Errorf("config listen.%s = %q, container port %s is %d", name, addr, name, ports[name])
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var pvcs []string
	for _, p := range objs["PersistentVolumeClaim"] {
		pvcs = append(pvcs, p.Metadata.Name)
	}
	dataOK, configOK := false, false
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && mounts[v.Name] == cfg.DataDir && slices.Contains(pvcs, v.PersistentVolumeClaim.ClaimName) {
			dataOK = true
		}
		if v.ConfigMap != nil && len(c.Args) == 3 && c.Args[2] == mounts[v.Name]+"/gatehouse.yaml" {
			configOK = true
		}
	}
	if !dataOK {
		t.Errorf("data_dir %s is not a mounted PersistentVolumeClaim defined in deploy/kubernetes (claims %q)", cfg.DataDir, pvcs)
	}
	if !configOK || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Errorf("args %q: want serve --config <ConfigMap mount>/gatehouse.yaml", c.Args)
	}

	labels := d.Spec.Template.Metadata.Labels
	for _, s := range objs["Service"] {
		for k, v := range s.Spec.Selector {
			if labels[k] != fmt.Sprint(v) {
				t.Errorf("Service %s selects %s=%s, the pod has %q", s.Metadata.Name, k, v, labels[k])
			}
		}
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort]; !ok {
				t.Errorf("Service %s port %s targets %q, not a container port name", s.Metadata.Name, p.Name, p.TargetPort)
			}
		}
	}
}

// parseConfigNoFiles loads a config with config.Load (strict decoding and
// Validate, which reads no files).
func parseConfigNoFiles(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(text))
	if err != nil {
		t.Fatalf("config in the ConfigMap: %v", err)
	}
	return cfg
}

// commandCombined runs name with args and a deadline and returns stdout and
// stderr together.
func commandCombined(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), ctx.Err()
	}
	return strings.TrimRight(string(out), "\n") + "\n", err
}
