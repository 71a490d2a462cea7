package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/e2e/harness"
	"golang.org/x/crypto/ssh"
)

// The demo's fixed names.
const (
	demoEmail    = "demo@example.com"
	demoClientID = "gatehouse-demo"
	gateHost     = "gate.localhost" // browsers resolve *.localhost to loopback without DNS
	appHost      = "app.localhost"
)

var demoGroups = []string{"engineering", "sre"}

func cmdInit(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "empty directory for everything the demo writes (required)")
	tmpl := fs.String("template", "configs/demo.yaml", "gatehouse config template with ${VARS}")
	login := fs.String("login", "", "the sshd target's login (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *login == "" || !filepath.IsAbs(*dir) {
		return errors.New("init: -dir (absolute) and -login are required")
	}
	v, err := prepare(*dir, *login)
	if err != nil {
		return err
	}
	t, err := os.ReadFile(*tmpl)
	if err != nil {
		return err
	}
	cfg, err := render(string(t), v)
	if err != nil {
		return fmt.Errorf("%s: %w", *tmpl, err)
	}
	if err := os.WriteFile(filepath.Join(*dir, "gatehouse.yaml"), []byte(cfg), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "demo.env"), []byte(shellEnv(v)), 0o600)
}

// prepare writes the demo's keys, certificates and configs under dir and
// returns the variables for the config template and demo.env.
func prepare(dir, login string) (map[string]string, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	v := map[string]string{
		"HTTPS_PORT": ports[0], "SSH_PORT": ports[1], "ADMIN_PORT": ports[2],
		"DEX_PORT": ports[3], "UPSTREAM_PORT": ports[4], "SSHD_PORT": ports[5],
		"DEMO_DIR": dir, "DATA_DIR": filepath.Join(dir, "data"),
		"SSH_LOGIN": login, "DEMO_EMAIL": demoEmail, "DEMO_GROUPS": strings.Join(demoGroups, ","),
		"GATE_HOST": gateHost, "APP_HOST": appHost,
		"CLIENT_ID": demoClientID,
	}
	v["PUBLIC_URL"] = "https://" + gateHost + ":" + v["HTTPS_PORT"]
	v["APP_URL"] = "https://" + appHost + ":" + v["HTTPS_PORT"] + "/"
	v["DEX_ADDR"] = "127.0.0.1:" + v["DEX_PORT"]
	v["DEX_ISSUER"] = "https://" + v["DEX_ADDR"] + "/dex"
	for _, d := range []string{"logs", "sshd", "client"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}

	// Dex: a throwaway CA and a certificate for 127.0.0.1.
	ca, err := harness.CreateCA(dir)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.IssueFiles("127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	v["DEX_CA"] = ca.CAFile
	v["DEX_CERT"] = certFile
	v["DEMO_PASSWORD"] = randomHex(6)
	secret := randomHex(24)
	v["CLIENT_SECRET_FILE"] = filepath.Join(dir, "oidc-client-secret")
	if err := os.WriteFile(v["CLIENT_SECRET_FILE"], []byte(secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	dexCfg, err := harness.DexConfig(v["DEX_ISSUER"], v["DEX_ADDR"], certFile, keyFile, harness.DexOptions{
		Users:   []harness.DexUser{{Email: demoEmail, Password: v["DEMO_PASSWORD"], Groups: demoGroups, Name: "Demo User"}},
		Clients: []harness.DexClient{{ID: demoClientID, Secret: secret, RedirectURIs: []string{v["PUBLIC_URL"] + "/auth/callback"}}},
	})
	if err != nil {
		return nil, err
	}
	v["DEX_CONFIG"] = filepath.Join(dir, "dex.json")
	if err := os.WriteFile(v["DEX_CONFIG"], dexCfg, 0o600); err != nil {
		return nil, err
	}

	// The sshd target. sshd reads TrustedUserCAKeys later, once demo.sh
	// has asked gatehouse for its user CA.
	sshdDir := filepath.Join(dir, "sshd")
	hostKeyFile := filepath.Join(sshdDir, "ssh_host_ed25519_key")
	hostPub, err := writeSSHKey(hostKeyFile)
	if err != nil {
		return nil, err
	}
	v["SSHD_HOST_KEY"] = hostPub
	v["SSHD_CONFIG"] = filepath.Join(sshdDir, "sshd_config")
	v["SSHD_TRUSTED_CA_FILE"] = filepath.Join(sshdDir, "trusted_user_ca_keys")
	port, _ := strconv.Atoi(v["SSHD_PORT"])
	sshdCfg := harness.SSHDConfigText(harness.SSHDConfigParams{
		Port: port, HostKeyFile: hostKeyFile, PidFile: filepath.Join(sshdDir, "sshd.pid"),
		TrustedUserCAKeysFile: v["SSHD_TRUSTED_CA_FILE"], AuthorizedKeysFile: "none", User: login,
	})
	if err := os.WriteFile(v["SSHD_CONFIG"], []byte(sshdCfg), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(v["SSHD_TRUSTED_CA_FILE"], nil, 0o644); err != nil {
		return nil, err
	}

	// The person's SSH key, so the demo works without one in ~/.ssh.
	v["CLIENT_KEY"] = filepath.Join(dir, "client", "id_ed25519")
	if _, err := writeSSHKey(v["CLIENT_KEY"]); err != nil {
		return nil, err
	}
	v["KNOWN_HOSTS"] = filepath.Join(dir, "client", "known_hosts")
	return v, nil
}

// writeSSHKey writes a new Ed25519 private key (OpenSSH format, 0600) and
// its .pub, and returns the public key line.
func writeSSHKey(path string) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	return line, os.WriteFile(path+".pub", []byte(line+" gatehouse-demo\n"), 0o644)
}

// freePorts returns n distinct free loopback ports, holding them all open
// while choosing so that none repeats.
func freePorts(n int) ([]string, error) {
	var ports []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// render replaces ${NAME} in t; an unknown name is an error, so a template
// and this program cannot drift apart silently.
func render(t string, v map[string]string) (string, error) {
	var missing []string
	out := os.Expand(t, func(k string) string {
		val, ok := v[k]
		if !ok {
			missing = append(missing, k)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown template variables %q", missing)
	}
	return out, nil
}

// shellEnv renders v as sorted NAME='value' lines for `source`.
func shellEnv(v map[string]string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(v[k], "'", `'\''`))
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
