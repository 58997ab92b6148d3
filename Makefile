# p2pdetect: the README's two commands are `make demo` and `make test`; both set up a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
P2P    := $(VENV)/bin/p2pdetect
STAMP  := $(VENV)/.installed

.PHONY: setup system system-test venv node demo test bench samples dataset model clean

setup: system venv node

# System packages the product needs: tshark (pyshark), tcpdump/iproute2/ethtool (generator,
# live scoring; sshd, ssh-keygen and openssl for its ssh and TLS traffic; coturn, curl, lftp, rsync,
# openvpn for its hard negatives; biglybt, ctorrent and Node.js for WebTorrent, BitTorrent engines besides libtorrent; aMule, a P2P family besides BitTorrent); the tests also need chromium (the report renders in headless Chromium).
# Each entry is command:package; a package is installed only when its command is missing.
SYSPKGS  := tshark:tshark tcpdump:tcpdump ip:iproute2 tc:iproute2 ethtool:ethtool iptables:iptables nft:nftables \
            sshd:openssh-server ssh-keygen:openssh-client openssl:openssl \
            turnserver:coturn curl:curl lftp:lftp rsync:rsync openvpn:openvpn biglybt:biglybt ctorrent:ctorrent \
            amuled:amule-daemon alcc:amule-utils \
            node:nodejs npm:npm
TESTPKGS := chromium:chromium
define apt_need
	@need=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || need="$$need $$pkg"; done; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "p2pdetect: missing system packages:$$need; run 'sudo apt-get install$$need'" >&2; exit 2; fi; \
	  echo "installing system packages:$$need"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	fi
endef

system:
	$(call apt_need,$(SYSPKGS))

system-test:
	$(call apt_need,$(TESTPKGS))

venv: $(STAMP)

# WebTorrent's pinned Node packages for the generator (package-lock.json; no install scripts, see its .npmrc).
NODEDIR := data/generator/webtorrent
node: $(NODEDIR)/node_modules/.package-lock.json

$(NODEDIR)/node_modules/.package-lock.json: $(NODEDIR)/package-lock.json $(NODEDIR)/package.json | system
	npm ci --prefix $(NODEDIR) --ignore-scripts --no-audit --no-fund --loglevel=error

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(P2P) demo

test: setup system-test
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/extract.py
	$(PY) benchmarks/score.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/host_context.py
	$(PY) benchmarks/host_evidence.py

samples: setup
	$(PY) -m p2pdetect.data.make_samples

dataset: setup
	$(PY) -m p2pdetect.data.make_corpus

# The shipped model is trained on the generated corpus (built first when absent, ~70 min on 2 cores)
# plus the real captures in ../shared/captures/ndpi (warned about and skipped when absent).
data/corpus/manifest.json: | setup
	$(PY) -m p2pdetect.data.make_corpus

model: setup data/corpus/manifest.json
	$(PY) -m p2pdetect.training.make_model

clean:
	rm -rf $(VENV) .cache *.egg-info
