package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// upstreamBody is what the upstream serves: a small static page.
var upstreamBody = "<!doctype html><title>bench</title><p>Hello from the upstream. " + strings.Repeat("x", 64) + "</p>\n"

// nginxConf renders an nginx.conf in dir with the given server block.
func nginxConf(dir, name, workers, server string) (string, error) {
	prefix := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes %s;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
%[4]s
%[5]s
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
%[3]s
}
`, workers, prefix, server, nginxBadMap, nginxBadLog(nginxBadLogPath(dir, name)))
	path := filepath.Join(prefix, "nginx.conf")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// startUpstream runs nginx (one worker) serving upstreamBody on loopback:
// over plain HTTP on port (the upstream behind every proxy) and over TLS on
// tlsPort (to measure the upstream directly under the same TLS as the
// proxies).
func startUpstream(dir string, port, tlsPort int, certFile, keyFile string) (*proc, error) {
	root := filepath.Join(dir, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(upstreamBody), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(root, "big.bin"), bigBody(), 0o644); err != nil {
		return nil, err
	}
	conf, err := nginxConf(dir, "upstream", "1", fmt.Sprintf(`    server {
        listen 127.0.0.1:%d;
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        root %s;
        location / { }
        # The upload mode's sink. A bare "return" would answer before
        # the body has arrived (nginx drops the rest afterwards), and a
        # proxy then rightly closes the client's connection mid-upload;
        # proxy_pass reads the whole body first, as an application does.
        location = /upload {
            client_max_body_size 2m;
            client_body_buffer_size 2m;
            proxy_pass http://127.0.0.1:%[1]d/uploaded;
        }
        location = /uploaded { return 200 "ok\n"; }
    }`, port, tlsPort, certFile, keyFile, root))
	if err != nil {
		return nil, err
	}
	return start(dir, "upstream-nginx", nil, "nginx", "-e", filepath.Join(dir, "upstream", "logs", "error.log"), "-c", conf, "-p", filepath.Join(dir, "upstream"))
}

// startNginxProxy runs nginx as a TLS reverse proxy with upstream
// keep-alive, the reference the others are compared with.
func startNginxProxy(dir string, port, h2Port, upPort int, certFile, keyFile string) (*proc, error) {
	conf, err := nginxConf(dir, "nginx-proxy", "auto", fmt.Sprintf(`    upstream app {
        server 127.0.0.1:%d;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:%d ssl;
        listen 127.0.0.1:%d ssl http2;
        server_name localhost;
        client_max_body_size 2m;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
        }
    }`, upPort, port, h2Port, certFile, keyFile))
	if err != nil {
		return nil, err
	}
	return start(dir, "nginx-proxy", nil, "nginx", "-e", filepath.Join(dir, "nginx-proxy", "logs", "error.log"), "-c", conf, "-p", filepath.Join(dir, "nginx-proxy"))
}

// nginxBadLogPath is where the nginx instance name logs answers that are
// not 2xx or 3xx.
func nginxBadLogPath(dir, name string) string {
	return filepath.Join(dir, name, "logs", "bad.log")
}
