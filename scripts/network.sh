#!/usr/bin/env bash
# network.sh runs the medprov Hyperledger Fabric network as native processes
# on loopback: an ordering service (Raft with 1 or 3 orderers of OrdererMSP,
# or SmartBFT with 4 orderers, two of HospitalOrdererMSP and two of
# ResearchOrdererMSP), one peer for HospitalMSP and one for ResearchMSP, the
# "medprov" channel, and the medprov chaincode as a service (one chaincode
# server per peer organisation).
#
# Usage: scripts/network.sh COMMAND [options]
#   up              start everything that is not running yet (idempotent);
#                   writes <dir>/profile.json, the connection profile
#   down            stop every process it started and delete <dir>
#   status          say what runs (exit 0 only when everything runs)
#   stop COMPONENT  stop one process, keep the state (`up` restarts it);
#                   COMPONENT: orderer0 (Raft --orderers 3: orderer0..2;
#                   BFT: orderer0..3), peer.hospital, peer.research,
#                   chaincode.hospital, chaincode.research
#   profile         print the path of the connection profile
#   invoke [--org ORG] [--] FUNCTION [ARG...]
#                   submit a medprov transaction with Fabric's peer CLI as
#                   ORG's admin (hospital or research, default hospital),
#                   endorsed by every peer; waits until the peers commit it
#                   and prints its transaction ID. A refused proposal exits
#                   non-zero with the chaincode's message on stderr
#   query [--org ORG] [--] FUNCTION [ARG...]
#                   evaluate a medprov function with the peer CLI as ORG's
#                   admin on ORG's peer and print its result
#   (Put "--" before FUNCTION when an argument may start with "-".)
#   block [--org ORG] NUMBER
#                   print block NUMBER of the channel as ORG's peer stored
#                   it (qscc GetBlockByNumber): the marshalled common.Block,
#                   hex-encoded on one line, orderer signatures included
#
# Options (or environment):
#   --dir DIR         state directory (MEDPROV_NETWORK_DIR, default
#                     <repo>/.cache/network)
#   --base-port N     first of 50 consecutive loopback ports, 60 for BFT
#                     (MEDPROV_NETWORK_BASE_PORT, default 27050)
#   --consensus raft|bft
#                     ordering service (MEDPROV_NETWORK_CONSENSUS, default
#                     raft). bft runs 4 SmartBFT orderers: orderer0 and
#                     orderer1 of HospitalOrdererMSP, orderer2 and orderer3
#                     of ResearchOrdererMSP; blocks need 3 of their 4
#                     signatures, and it keeps ordering with one down
#   --orderers N      cluster size: 1 (default) or 3 for raft, 4 for bft
#                     (MEDPROV_NETWORK_ORDERERS)
# The first `up` records the ports, consensus and cluster size in <dir>;
# later commands on that directory reuse them.
#
# Other environment: MEDPROV_CACHE (Fabric binaries, see fabric.sh),
# MEDPROV_FABRIC_LOGGING_SPEC (Fabric log spec, default
# "grpc=warning:info"), MEDPROV_NETWORK_PPROF=true (peers serve Go pprof on
# B+34 / B+44, for profiling under load).
#
# Port layout from the base port B: orderer i (i < 3) listens on B+10i, its
# admin (channel participation) API on B+10i+1 and its operations API on
# B+10i+2. The hospital peer uses B+30 (peer), B+31 (chaincode), B+32
# (operations) and its chaincode server B+33; the research peer B+40..B+43.
# BFT's fourth orderer, orderer3, takes B+50..B+52, after the peers, so a
# BFT network spans B..B+59 and every other port is where it is on Raft.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
netcfg="$repo/network"

CHANNEL=medprov
CC_NAME=medprov
CC_VERSION=1.0
CC_SEQUENCE=1
# Both organisations endorse every transaction; see network/README.md.
CC_POLICY="AND('HospitalMSP.peer','ResearchMSP.peer')"
ORGS=(hospital research)
MARKER=.medprov-network

die() {
	echo "network.sh: $*" >&2
	exit 1
}
log() { echo "network.sh: $*" >&2; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# A caller's Fabric environment (CORE_PEER_TLS_ENABLED, FABRIC_CFG_PATH, ...)
# must not leak into the processes and CLI calls below.
for v in $(compgen -e); do
	case "$v" in
	CORE_* | ORDERER_* | FABRIC_* | CHAINCODE_* | OSNADMIN_*) unset "$v" ;;
	esac
done

cmd="${1:-}"
[[ -n "$cmd" ]] || { usage >&2; exit 2; }
shift
dir="${MEDPROV_NETWORK_DIR:-$repo/.cache/network}"
base="${MEDPROV_NETWORK_BASE_PORT:-}"
orderers="${MEDPROV_NETWORK_ORDERERS:-}"
consensus="${MEDPROV_NETWORK_CONSENSUS:-}"
component=""
cli_org=hospital
cli_args=()
while (($#)); do
	case "$1" in
	--dir) dir="$2"; shift 2 ;;
	--dir=*) dir="${1#*=}"; shift ;;
	--base-port) base="$2"; shift 2 ;;
	--base-port=*) base="${1#*=}"; shift ;;
	--orderers) orderers="$2"; shift 2 ;;
	--orderers=*) orderers="${1#*=}"; shift ;;
	--consensus) consensus="$2"; shift 2 ;;
	--consensus=*) consensus="${1#*=}"; shift ;;
	--org) cli_org="$2"; shift 2 ;;
	--org=*) cli_org="${1#*=}"; shift ;;
	--)
		[[ "$cmd" == invoke || "$cmd" == query || "$cmd" == block ]] || die "unknown option $1"
		shift
		cli_args+=("$@")
		break
		;;
	-h | --help) usage; exit 0 ;;
	-*) die "unknown option $1" ;;
	*)
		if [[ "$cmd" == invoke || "$cmd" == query || "$cmd" == block ]]; then
			cli_args+=("$1")
			shift
			continue
		fi
		[[ "$cmd" == stop && -z "$component" ]] || die "unexpected argument $1"
		component="$1"
		shift
		;;
	esac
done
mkdir -p "$(dirname "$dir")"
dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"
crypto="$dir/crypto"

# load_settings fixes base port, consensus and orderer count: from the
# state directory when it exists (a running network keeps its ports), else
# from options. A directory from before BFT existed records no consensus:
# it is Raft.
load_settings() {
	if [[ -f "$dir/network.env" ]]; then
		local saved_base saved_orderers saved_consensus
		saved_base="$(sed -n 's/^BASE_PORT=//p' "$dir/network.env")"
		saved_orderers="$(sed -n 's/^ORDERERS=//p' "$dir/network.env")"
		saved_consensus="$(sed -n 's/^CONSENSUS=//p' "$dir/network.env")"
		saved_consensus="${saved_consensus:-raft}"
		if [[ -n "$base" && "$base" != "$saved_base" ]] || [[ -n "$orderers" && "$orderers" != "$saved_orderers" ]] ||
			[[ -n "$consensus" && "$consensus" != "$saved_consensus" ]]; then
			die "$dir was created with base port $saved_base, $saved_consensus and $saved_orderers orderer(s); run 'down' first to change them"
		fi
		base="$saved_base"
		orderers="$saved_orderers"
		consensus="$saved_consensus"
	fi
	base="${base:-27050}"
	consensus="${consensus:-raft}"
	case "$consensus" in
	raft)
		orderers="${orderers:-1}"
		[[ "$orderers" == 1 || "$orderers" == 3 ]] || die "--orderers must be 1 or 3 for raft, got $orderers"
		span=50
		;;
	bft)
		orderers="${orderers:-4}"
		[[ "$orderers" == 4 ]] || die "--orderers must be 4 for bft (f = 1 needs 3f+1 orderers), got $orderers"
		span=60
		;;
	*) die "--consensus must be raft or bft, got $consensus" ;;
	esac
	[[ "$base" =~ ^[0-9]+$ ]] && ((base >= 1024 && base + span <= 65535)) ||
		die "base port must be in 1024..$((65535 - span)) for $consensus, got $base"
}

org_msp() { case "$1" in hospital) echo HospitalMSP ;; research) echo ResearchMSP ;; *) die "unknown org $1" ;; esac; }
org_index() { case "$1" in hospital) echo 0 ;; research) echo 1 ;; *) die "unknown org $1" ;; esac; }
org_domain() { echo "$1.medprov.test"; }
# orderer_slot I is the block of ten ports orderer I uses: 0..2, then 5
# for BFT's orderer3 (blocks 3 and 4 are the peers').
orderer_slot() { if (($1 < 3)); then echo "$1"; else echo $(($1 + 2)); fi; }
orderer_port() { echo $((base + 10 * $(orderer_slot "$1"))); }
orderer_admin_port() { echo $((base + 10 * $(orderer_slot "$1") + 1)); }
orderer_ops_port() { echo $((base + 10 * $(orderer_slot "$1") + 2)); }
peer_port() { echo $((base + 30 + 10 * $(org_index "$1"))); }
peer_cc_port() { echo $((base + 31 + 10 * $(org_index "$1"))); }
peer_ops_port() { echo $((base + 32 + 10 * $(org_index "$1"))); }
peer_pprof_port() { echo $((base + 34 + 10 * $(org_index "$1"))); }
ccserver_port() { echo $((base + 33 + 10 * $(org_index "$1"))); }

# orderer_org I names the side that operates orderer I: "orderer" (Raft:
# OrdererMSP runs them all) or, for BFT, hospital (orderer0, orderer1) and
# research (orderer2, orderer3).
orderer_org() {
	if [[ "$consensus" == bft ]]; then
		if (($1 < 2)); then echo hospital; else echo research; fi
	else
		echo orderer
	fi
}
orderer_msp() {
	case "$(orderer_org "$1")" in
	orderer) echo OrdererMSP ;;
	hospital) echo HospitalOrdererMSP ;;
	research) echo ResearchOrdererMSP ;;
	esac
}
orderer_domain() {
	local org
	org="$(orderer_org "$1")"
	if [[ "$org" == orderer ]]; then echo orderer.medprov.test; else echo "orderer.$org.medprov.test"; fi
}
orderer_org_dir() { echo "$crypto/ordererOrganizations/$(orderer_domain "$1")"; }
orderer_dir() { echo "$(orderer_org_dir "$1")/orderers/orderer$1.$(orderer_domain "$1")"; }
orderer_tlsca() { echo "$(orderer_org_dir "$1")/tlsca/tlsca.$(orderer_domain "$1")-cert.pem"; }
orderer_admin_tls() { echo "$(orderer_org_dir "$1")/users/Admin@$(orderer_domain "$1")/tls"; }
# orderer_tls_roots prints the TLS CA of every orderer org, comma-separated:
# orderers of both BFT orgs dial each other.
orderer_tls_roots() {
	local i roots=""
	for ((i = 0; i < orderers; i++)); do
		[[ ",$roots," == *",$(orderer_tlsca "$i"),"* ]] || roots+="${roots:+,}$(orderer_tlsca "$i")"
	done
	echo "$roots"
}
# submit_orderer prints the index of the first running orderer, for the
# peer CLI's -o (with one orderer down the others still order; BFT
# followers forward what they receive to the leader).
submit_orderer() {
	local i
	for ((i = 0; i < orderers; i++)); do
		running "orderer$i" && { echo "$i"; return 0; }
	done
	echo 0
}
peer_node_dir() { echo "$crypto/peerOrganizations/$(org_domain "$1")/peers/peer0.$(org_domain "$1")"; }
peer_tlsca() { echo "$crypto/peerOrganizations/$(org_domain "$1")/tlsca/tlsca.$(org_domain "$1")-cert.pem"; }
user_msp() { echo "$crypto/peerOrganizations/$(org_domain "$1")/users/$2@$(org_domain "$1")/msp"; }

# ---- processes -------------------------------------------------------------

# running NAME succeeds when the process recorded in NAME's pid file is alive
# and is still the program that was started (pids get reused).
running() {
	local pidfile="$dir/run/$1.pid" pid
	[[ -f "$pidfile" ]] || return 1
	pid="$(cat "$pidfile")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	local cmdline
	cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
	[[ "$cmdline" == *"$(cat "$dir/run/$1.cmd")"* ]]
}

# start NAME ENV... -- PROGRAM ARGS... starts PROGRAM detached with exactly
# ENV (plus PATH and HOME), logging to <dir>/logs/NAME.log.
start() {
	local name="$1" envs=()
	shift
	while (($#)) && [[ "$1" != -- ]]; do
		envs+=("$1")
		shift
	done
	shift
	mkdir -p "$dir/run" "$dir/logs"
	rm -f "$dir/run/$name.pid"
	echo "$*" >"$dir/run/$name.cmd"
	# The inner shell writes its own pid, then becomes the program.
	nohup env -i PATH="$PATH" HOME="$HOME" "${envs[@]}" \
		bash -c 'echo $$ >"$0"; exec "$@"' "$dir/run/$name.pid" "$@" \
		>>"$dir/logs/$name.log" 2>&1 </dev/null &
	local i
	for i in $(seq 50); do
		[[ -s "$dir/run/$name.pid" ]] && return 0
		sleep 0.1
	done
	die "$name did not start; see $dir/logs/$name.log"
}

# stop_proc NAME stops NAME (TERM, then KILL after 10 s) if it runs.
stop_proc() {
	local name="$1" pid i
	if running "$name"; then
		pid="$(cat "$dir/run/$name.pid")"
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "$name (pid $pid) ignored TERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$dir/run/$name.pid"
}

# wait_healthy NAME URL waits until NAME's operations endpoint reports healthy.
wait_healthy() {
	local name="$1" url="$2" i
	for i in $(seq 300); do
		running "$name" || die "$name exited; see $dir/logs/$name.log"
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	die "$name not healthy after 60 s ($url); see $dir/logs/$name.log"
}

# wait_listening NAME PORT waits until something accepts on 127.0.0.1:PORT.
wait_listening() {
	local name="$1" port="$2" i
	for i in $(seq 300); do
		running "$name" || die "$name exited; see $dir/logs/$name.log"
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	die "$name not listening on $port after 60 s; see $dir/logs/$name.log"
}

# retry N CMD... runs CMD up to N times, a second apart (Raft leader
# election and gossip take a moment after start).
retry() {
	local n="$1" i out
	shift
	for ((i = 1; i <= n; i++)); do
		if out="$("$@" 2>&1)"; then
			[[ -z "$out" ]] || echo "$out" >>"$dir/logs/cli.log"
			return 0
		fi
		echo "$out" >>"$dir/logs/cli.log"
		sleep 1
	done
	echo "$out" >&2
	return 1
}

# ---- configuration ---------------------------------------------------------

subst() { # subst OUTPUT TEMPLATE...: fill in ${VAR} placeholders
	local out="$1"
	shift
	cat "$@" | envsubst '${ORDERER_COUNT} ${CRYPTO} ${ORDERER_ENDPOINTS} ${CONSENTERS} ${HOSPITAL_PEER_PORT} ${RESEARCH_PEER_PORT} ${HOSPITAL_ORDERER_ENDPOINTS} ${RESEARCH_ORDERER_ENDPOINTS} ${CONSENTER_MAPPING}' >"$out"
}

generate_crypto() {
	[[ -d "$crypto" ]] && return 0
	log "generating certificates (cryptogen)"
	mkdir -p "$dir/config"
	ORDERER_COUNT="$orderers" subst "$dir/config/crypto-config.yaml" \
		"$netcfg/crypto-config.yaml" "$netcfg/crypto-config-$consensus.yaml"
	cryptogen generate --config "$dir/config/crypto-config.yaml" --output "$crypto.tmp" >>"$dir/logs/cli.log"
	mv "$crypto.tmp" "$crypto"
}

generate_channel_block() {
	[[ -f "$dir/config/$CHANNEL.block" ]] && return 0
	log "generating the $CHANNEL genesis block (configtxgen, $consensus)"
	local i od ep endpoints="" consenters="" hospital_eps="" research_eps="" mapping="" profile=MedprovChannel
	for ((i = 0; i < orderers; i++)); do
		od="$(orderer_dir "$i")"
		ep="\"127.0.0.1:$(orderer_port "$i")\""
		if [[ "$consensus" == bft ]]; then
			# SmartBFT consenter IDs start at 1; the identity is the orderer's
			# signing certificate, whose signatures blocks must carry.
			mapping+="${mapping:+, }{ID: $((i + 1)), Host: 127.0.0.1, Port: $(orderer_port "$i"), MSPID: $(orderer_msp "$i"), Identity: \"$od/msp/signcerts/orderer$i.$(orderer_domain "$i")-cert.pem\", ClientTLSCert: \"$od/tls/server.crt\", ServerTLSCert: \"$od/tls/server.crt\"}"
			case "$(orderer_org "$i")" in
			hospital) hospital_eps+="${hospital_eps:+, }$ep" ;;
			research) research_eps+="${research_eps:+, }$ep" ;;
			esac
		else
			endpoints+="${endpoints:+, }$ep"
			consenters+="${consenters:+, }{Host: 127.0.0.1, Port: $(orderer_port "$i"), ClientTLSCert: \"$od/tls/server.crt\", ServerTLSCert: \"$od/tls/server.crt\"}"
		fi
	done
	if [[ "$consensus" == bft ]]; then profile=MedprovChannelBFT; fi
	CRYPTO="$crypto" ORDERER_ENDPOINTS="$endpoints" CONSENTERS="$consenters" \
		HOSPITAL_ORDERER_ENDPOINTS="$hospital_eps" RESEARCH_ORDERER_ENDPOINTS="$research_eps" \
		CONSENTER_MAPPING="$mapping" \
		HOSPITAL_PEER_PORT="$(peer_port hospital)" RESEARCH_PEER_PORT="$(peer_port research)" \
		subst "$dir/config/configtx.yaml" "$netcfg/configtx.yaml"
	configtxgen -configPath "$dir/config" -profile "$profile" -channelID "$CHANNEL" \
		-outputBlock "$dir/config/$CHANNEL.block.tmp" >>"$dir/logs/cli.log" 2>&1 ||
		die "configtxgen failed; see $dir/logs/cli.log"
	[[ "$consensus" != bft ]] || check_bft_block_validation "$dir/config/$CHANNEL.block.tmp"
	mv "$dir/config/$CHANNEL.block.tmp" "$dir/config/$CHANNEL.block"
}

# check_bft_block_validation BLOCK refuses a BFT genesis block whose
# /Channel/Orderer/BlockValidation policy is not a signature policy
# needing a quorum (2f+1 of n = 3f+1, here 3 of 4) of distinct consenter
# identities: with "ANY Writers" one orderer could sign a block alone.
check_bft_block_validation() {
	local policy want=$(((orderers + (orderers - 1) / 3 + 2) / 2))
	policy="$(configtxgen -inspectBlock "$1" 2>>"$dir/logs/cli.log" |
		jq -c '.data.data[0].payload.data.config.channel_group.groups.Orderer.policies.BlockValidation.policy')" ||
		die "cannot inspect the genesis block; see $dir/logs/cli.log"
	jq -e --argjson n "$orderers" --argjson q "$want" \
		'.type == 1 and .value.rule.n_out_of.n == $q and (.value.rule.n_out_of.rules | length) == $n
		 and ([.value.identities[].principal_classification] | unique) == ["IDENTITY"]' <<<"$policy" >/dev/null ||
		die "BFT block validation policy is not $want of $orderers consenters: $policy"
}

# peer_config writes core.yaml for the peers: the Fabric sample config with
# Docker switched off and the CCaaS builder (absolute path) in place.
peer_config() {
	local out="$dir/config/peer"
	[[ -f "$out/core.yaml" ]] && return 0
	mkdir -p "$out"
	sed -e 's#^\(  *\)endpoint: unix:///var/run/docker.sock#\1endpoint: ""#' \
		-e "s#^\(  *\)path: /opt/hyperledger/ccaas_builder#\1path: $netcfg/ccaas#" \
		"$sampleconfig/core.yaml" >"$out/core.yaml.tmp"
	grep -q '^  endpoint: ""' "$out/core.yaml.tmp" || die "could not set vm.endpoint in core.yaml"
	grep -q "path: $netcfg/ccaas" "$out/core.yaml.tmp" || die "could not set the external builder in core.yaml"
	mv "$out/core.yaml.tmp" "$out/core.yaml"
}

orderer_config() {
	local out="$dir/config/orderer"
	[[ -f "$out/orderer.yaml" ]] && return 0
	mkdir -p "$out"
	cp "$sampleconfig/orderer.yaml" "$out/orderer.yaml"
}

# ---- nodes -----------------------------------------------------------------

start_orderer() {
	local i="$1" name="orderer$1" od roots consdir=etcdraft
	od="$(orderer_dir "$i")"
	roots="$(orderer_tls_roots)"
	if [[ "$consensus" == bft ]]; then consdir=smartbft; fi
	if ! running "$name"; then
		log "starting $name ($(orderer_msp "$i"), $consensus) on 127.0.0.1:$(orderer_port "$i")"
		mkdir -p "$dir/$name"
		start "$name" \
			FABRIC_CFG_PATH="$dir/config/orderer" \
			FABRIC_LOGGING_SPEC="$logspec" \
			ORDERER_GENERAL_LISTENADDRESS=127.0.0.1 \
			ORDERER_GENERAL_LISTENPORT="$(orderer_port "$i")" \
			ORDERER_GENERAL_LOCALMSPID="$(orderer_msp "$i")" \
			ORDERER_GENERAL_LOCALMSPDIR="$od/msp" \
			ORDERER_GENERAL_TLS_ENABLED=true \
			ORDERER_GENERAL_TLS_PRIVATEKEY="$od/tls/server.key" \
			ORDERER_GENERAL_TLS_CERTIFICATE="$od/tls/server.crt" \
			ORDERER_GENERAL_TLS_ROOTCAS="[$roots]" \
			ORDERER_GENERAL_BOOTSTRAPMETHOD=none \
			ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$od/tls/server.crt" \
			ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$od/tls/server.key" \
			ORDERER_GENERAL_CLUSTER_ROOTCAS="[$roots]" \
			ORDERER_FILELEDGER_LOCATION="$dir/$name/ledger" \
			ORDERER_CONSENSUS_WALDIR="$dir/$name/$consdir/wal" \
			ORDERER_CONSENSUS_SNAPDIR="$dir/$name/$consdir/snapshot" \
			ORDERER_CHANNELPARTICIPATION_ENABLED=true \
			ORDERER_ADMIN_LISTENADDRESS="127.0.0.1:$(orderer_admin_port "$i")" \
			ORDERER_ADMIN_TLS_ENABLED=true \
			ORDERER_ADMIN_TLS_PRIVATEKEY="$od/tls/server.key" \
			ORDERER_ADMIN_TLS_CERTIFICATE="$od/tls/server.crt" \
			ORDERER_ADMIN_TLS_ROOTCAS="[$od/tls/ca.crt]" \
			ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true \
			ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$od/tls/ca.crt]" \
			ORDERER_OPERATIONS_LISTENADDRESS="127.0.0.1:$(orderer_ops_port "$i")" \
			ORDERER_METRICS_PROVIDER=prometheus \
			-- "$bin/orderer"
	fi
	wait_healthy "$name" "http://127.0.0.1:$(orderer_ops_port "$i")/healthz"
}

# osnadmin_call I ARGS... runs osnadmin against orderer I as the admin of
# the org that operates it (each org's admin API trusts its own TLS CA only).
osnadmin_call() {
	local i="$1" tls
	shift
	tls="$(orderer_admin_tls "$i")"
	osnadmin channel "$@" -o "127.0.0.1:$(orderer_admin_port "$i")" \
		--ca-file "$(orderer_tlsca "$i")" --client-cert "$tls/client.crt" --client-key "$tls/client.key"
}

join_orderer() {
	local i="$1" out tries=0
	# The admin API may come up after the operations endpoint reports
	# healthy (seen on a loaded machine after an orderer restart): join only
	# on a definite "not found", never because the API did not answer yet.
	while :; do
		out="$(osnadmin_call "$i" list --channelID "$CHANNEL" 2>&1 || true)"
		grep -q "Status: 200" <<<"$out" && return 0
		grep -q "Status: 404" <<<"$out" && break
		((++tries < 240)) || die "orderer$i admin API did not answer in 120s: $out"
		sleep 0.5
	done
	log "joining orderer$i to $CHANNEL"
	out="$(osnadmin_call "$i" join --channelID "$CHANNEL" --config-block "$dir/config/$CHANNEL.block" 2>&1)" ||
		die "osnadmin join failed: $out"
	grep -q "Status: 201" <<<"$out" || die "osnadmin join failed: $out"
}

start_peer() {
	local org="$1" name="peer.$1" nd domain
	nd="$(peer_node_dir "$org")"
	domain="$(org_domain "$org")"
	if ! running "$name"; then
		log "starting $name on 127.0.0.1:$(peer_port "$org")"
		mkdir -p "$dir/$name"
		start "$name" \
			FABRIC_CFG_PATH="$dir/config/peer" \
			FABRIC_LOGGING_SPEC="$logspec" \
			CORE_PEER_ID="peer0.$domain" \
			CORE_PEER_ADDRESS="127.0.0.1:$(peer_port "$org")" \
			CORE_PEER_LISTENADDRESS="127.0.0.1:$(peer_port "$org")" \
			CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$(peer_cc_port "$org")" \
			CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$(peer_cc_port "$org")" \
			CORE_PEER_GOSSIP_BOOTSTRAP="127.0.0.1:$(peer_port "$org")" \
			CORE_PEER_GOSSIP_EXTERNALENDPOINT="127.0.0.1:$(peer_port "$org")" \
			CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s \
			CORE_PEER_LOCALMSPID="$(org_msp "$org")" \
			CORE_PEER_MSPCONFIGPATH="$nd/msp" \
			CORE_PEER_TLS_ENABLED=true \
			CORE_PEER_TLS_CERT_FILE="$nd/tls/server.crt" \
			CORE_PEER_TLS_KEY_FILE="$nd/tls/server.key" \
			CORE_PEER_TLS_ROOTCERT_FILE="$nd/tls/ca.crt" \
			CORE_PEER_FILESYSTEMPATH="$dir/$name/data" \
			CORE_LEDGER_SNAPSHOTS_ROOTDIR="$dir/$name/snapshots" \
			CORE_OPERATIONS_LISTENADDRESS="127.0.0.1:$(peer_ops_port "$org")" \
			CORE_METRICS_PROVIDER=prometheus \
			CORE_PEER_PROFILE_ENABLED="${MEDPROV_NETWORK_PPROF:-false}" \
			CORE_PEER_PROFILE_LISTENADDRESS="127.0.0.1:$(peer_pprof_port "$org")" \
			-- "$bin/peer" node start
	fi
	wait_healthy "$name" "http://127.0.0.1:$(peer_ops_port "$org")/healthz"
}

# as_admin ORG CMD... runs a peer CLI command as ORG's admin against its peer.
as_admin() {
	local org="$1"
	shift
	env FABRIC_CFG_PATH="$dir/config/peer" \
		FABRIC_LOGGING_SPEC=warning \
		CORE_PEER_LOCALMSPID="$(org_msp "$org")" \
		CORE_PEER_MSPCONFIGPATH="$(user_msp "$org" Admin)" \
		CORE_PEER_ADDRESS="127.0.0.1:$(peer_port "$org")" \
		CORE_PEER_TLS_ENABLED=true \
		CORE_PEER_TLS_ROOTCERT_FILE="$(peer_tlsca "$org")" \
		"$@"
}

# joined ORG succeeds when ORG's peer lists the channel.
joined() {
	local out
	out="$(as_admin "$1" peer channel list 2>/dev/null)" || return 1
	grep -qx "$CHANNEL" <<<"$out"
}

# join ORG joins ORG's peer to the channel; a ledger that already exists
# (a restarted peer) counts as joined.
join() {
	local out
	joined "$1" && return 0
	out="$(as_admin "$1" peer channel join -b "$dir/config/$CHANNEL.block" 2>&1)" && return 0
	grep -q "already exists" <<<"$out" && return 0
	echo "$out" >&2
	return 1
}

join_peer() {
	local org="$1"
	joined "$org" && return 0
	log "joining peer.$org to $CHANNEL"
	retry 30 join "$org" || die "peer.$org could not join $CHANNEL"
}

# ---- chaincode ---------------------------------------------------------------

build_chaincode() {
	log "building cmd/medprov-chaincode"
	mkdir -p "$dir/bin"
	(cd "$repo" && go build -o "$dir/bin/medprov-chaincode.new" ./cmd/medprov-chaincode) ||
		die "go build ./cmd/medprov-chaincode failed"
	mv "$dir/bin/medprov-chaincode.new" "$dir/bin/medprov-chaincode"
	cc_hash="$(sha256sum "$dir/bin/medprov-chaincode" | cut -d' ' -f1)"
}

# package_chaincode ORG writes ORG's CCaaS package (metadata.json and a
# code.tar.gz holding only connection.json) and records its package ID.
package_chaincode() {
	local org="$1" work="$dir/chaincode/$1"
	[[ -f "$work/package-id" ]] && return 0
	mkdir -p "$work/src"
	printf '{"address":"127.0.0.1:%s","dial_timeout":"10s","tls_required":false}\n' "$(ccserver_port "$org")" >"$work/src/connection.json"
	printf '{"type":"ccaas","label":"%s_%s"}\n' "$CC_NAME" "$org" >"$work/metadata.json"
	tar -C "$work/src" -czf "$work/code.tar.gz" connection.json
	tar -C "$work" -czf "$work/$CC_NAME.tgz" metadata.json code.tar.gz
	as_admin "$org" peer lifecycle chaincode calculatepackageid "$work/$CC_NAME.tgz" >"$work/package-id.tmp"
	mv "$work/package-id.tmp" "$work/package-id"
}

install_chaincode() {
	local org="$1" id
	id="$(cat "$dir/chaincode/$org/package-id")"
	if as_admin "$org" peer lifecycle chaincode queryinstalled --output json 2>/dev/null |
		jq -e --arg id "$id" '.installed_chaincodes // [] | any(.package_id == $id)' >/dev/null; then
		return 0
	fi
	log "installing $id on peer.$org"
	retry 10 as_admin "$org" peer lifecycle chaincode install "$dir/chaincode/$org/$CC_NAME.tgz" ||
		die "install on peer.$org failed"
}

approve_chaincode() {
	local org="$1" id
	id="$(cat "$dir/chaincode/$org/package-id")"
	as_admin "$org" peer lifecycle chaincode queryapproved -C "$CHANNEL" -n "$CC_NAME" \
		--sequence "$CC_SEQUENCE" >/dev/null 2>&1 && return 0
	log "approving $CC_NAME for $(org_msp "$org")"
	local o
	o="$(submit_orderer)"
	retry 30 as_admin "$org" peer lifecycle chaincode approveformyorg \
		-o "127.0.0.1:$(orderer_port "$o")" --tls --cafile "$(orderer_tlsca "$o")" \
		-C "$CHANNEL" -n "$CC_NAME" -v "$CC_VERSION" --sequence "$CC_SEQUENCE" \
		--package-id "$id" --signature-policy "$CC_POLICY" ||
		die "approve for $(org_msp "$org") failed"
}

commit_chaincode() {
	as_admin hospital peer lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CC_NAME" >/dev/null 2>&1 && return 0
	log "committing the $CC_NAME definition (policy $CC_POLICY)"
	local peers=() org o
	for org in "${ORGS[@]}"; do
		peers+=(--peerAddresses "127.0.0.1:$(peer_port "$org")" --tlsRootCertFiles "$(peer_tlsca "$org")")
	done
	o="$(submit_orderer)"
	retry 30 as_admin hospital peer lifecycle chaincode commit \
		-o "127.0.0.1:$(orderer_port "$o")" --tls --cafile "$(orderer_tlsca "$o")" \
		-C "$CHANNEL" -n "$CC_NAME" -v "$CC_VERSION" --sequence "$CC_SEQUENCE" \
		--signature-policy "$CC_POLICY" "${peers[@]}" ||
		die "chaincode commit failed"
}

# start_ccserver ORG starts ORG's chaincode server, restarting it when the
# chaincode binary changed since it was started.
start_ccserver() {
	local org="$1" name="chaincode.$1"
	if running "$name" && [[ "$(cat "$dir/run/$name.hash" 2>/dev/null)" != "$cc_hash" ]]; then
		log "chaincode changed: restarting $name"
		stop_proc "$name"
	fi
	if ! running "$name"; then
		log "starting $name on 127.0.0.1:$(ccserver_port "$org")"
		echo "$cc_hash" >"$dir/run/$name.hash"
		start "$name" \
			CHAINCODE_SERVER_ADDRESS="127.0.0.1:$(ccserver_port "$org")" \
			CORE_CHAINCODE_ID_NAME="$(cat "$dir/chaincode/$org/package-id")" \
			-- "$dir/bin/medprov-chaincode"
	fi
	wait_listening "$name" "$(ccserver_port "$org")"
}

# peers_known ORG succeeds once ORG's peer has learnt the other peers of
# the channel through gossip; before that, the gateway's discovery cannot
# find endorsers that satisfy the policy.
peers_known() {
	local n
	n="$(curl -fsS "http://127.0.0.1:$(peer_ops_port "$1")/metrics" |
		sed -n "s/^gossip_membership_total_peers_known{channel=\"$CHANNEL\"} //p")"
	[[ -n "$n" ]] && ((n >= ${#ORGS[@]} - 1))
}

# chaincode_ready ORG succeeds once ORG's peer reaches its chaincode server.
chaincode_ready() {
	as_admin "$1" peer chaincode query -C "$CHANNEL" -n "$CC_NAME" \
		-c '{"Args":["org.hyperledger.fabric:GetMetadata"]}' >/dev/null
}

# write_profile writes the connection profile. The medprov gateway needs
# only each org's peer and users: it submits through its peer's Fabric
# Gateway service, which learns the orderers (all of them for BFT, where it
# broadcasts to every orderer and waits for a quorum) from the channel
# configuration. "orderer" (the first orderer) and "orderers" (every one,
# with the MSP that operates it) are for tools such as the peer CLI.
write_profile() {
	local org orgs="[]" entry i ords="[]"
	for org in "${ORGS[@]}"; do
		entry="$(jq -n \
			--arg msp "$(org_msp "$org")" \
			--arg name "$org" \
			--arg endpoint "127.0.0.1:$(peer_port "$org")" \
			--arg host "peer0.$(org_domain "$org")" \
			--arg tlsca "$(peer_tlsca "$org")" \
			--arg admin "$(user_msp "$org" Admin)" \
			--arg client "$(user_msp "$org" User1)" \
			--arg cc "127.0.0.1:$(ccserver_port "$org")" \
			'{name: $name, mspId: $msp, peerEndpoint: $endpoint, peerHostOverride: $host,
			  tlsCACert: $tlsca, adminMSPDir: $admin, clientMSPDir: $client,
			  chaincodeServer: $cc}')"
		orgs="$(jq --argjson e "$entry" '. + [$e]' <<<"$orgs")"
	done
	for ((i = 0; i < orderers; i++)); do
		entry="$(jq -n --arg name "orderer$i" --arg msp "$(orderer_msp "$i")" \
			--arg endpoint "127.0.0.1:$(orderer_port "$i")" \
			--arg host "orderer$i.$(orderer_domain "$i")" --arg tlsca "$(orderer_tlsca "$i")" \
			'{name: $name, mspId: $msp, endpoint: $endpoint, hostOverride: $host, tlsCACert: $tlsca}')"
		ords="$(jq --argjson e "$entry" '. + [$e]' <<<"$ords")"
	done
	jq -n --arg channel "$CHANNEL" --arg cc "$CC_NAME" --argjson orgs "$orgs" \
		--arg consensus "$consensus" --argjson ords "$ords" \
		--arg orderer "127.0.0.1:$(orderer_port 0)" --arg otlsca "$(orderer_tlsca 0)" \
		'{channel: $channel, chaincode: $cc, organizations: $orgs,
		  orderer: {endpoint: $orderer, tlsCACert: $otlsca},
		  consensus: $consensus, orderers: $ords}' >"$dir/profile.json.tmp"
	mv "$dir/profile.json.tmp" "$dir/profile.json"
}

# ---- commands ----------------------------------------------------------------

components() {
	local i org
	for ((i = 0; i < orderers; i++)); do echo "orderer$i"; done
	for org in "${ORGS[@]}"; do echo "peer.$org"; done
	for org in "${ORGS[@]}"; do echo "chaincode.$org"; done
}

cmd_up() {
	load_settings
	bin="$("$repo/scripts/fabric.sh")" || die "building the Fabric binaries failed (scripts/fabric.sh)"
	sampleconfig="$("$repo/scripts/fabric.sh" sampleconfig-dir)"
	export PATH="$bin:$PATH"
	logspec="${MEDPROV_FABRIC_LOGGING_SPEC:-grpc=warning:info}"
	for tool in envsubst jq curl; do
		command -v "$tool" >/dev/null || die "$tool is required"
	done

	if [[ -d "$dir" && ! -f "$dir/$MARKER" ]] && [[ -n "$(ls -A "$dir")" ]]; then
		die "$dir exists and is not a medprov network directory"
	fi
	mkdir -p "$dir/logs" "$dir/run"
	touch "$dir/$MARKER"
	[[ -f "$dir/network.env" ]] ||
		printf 'BASE_PORT=%s\nORDERERS=%s\nCONSENSUS=%s\n' "$base" "$orderers" "$consensus" >"$dir/network.env"

	generate_crypto
	generate_channel_block
	orderer_config
	peer_config

	local i org
	for ((i = 0; i < orderers; i++)); do start_orderer "$i"; done
	for ((i = 0; i < orderers; i++)); do join_orderer "$i"; done
	for org in "${ORGS[@]}"; do start_peer "$org"; done
	for org in "${ORGS[@]}"; do join_peer "$org"; done

	build_chaincode
	for org in "${ORGS[@]}"; do
		package_chaincode "$org"
		install_chaincode "$org"
	done
	# Servers first: the peers connect to them as soon as the definition commits.
	for org in "${ORGS[@]}"; do start_ccserver "$org"; done
	for org in "${ORGS[@]}"; do approve_chaincode "$org"; done
	commit_chaincode
	for org in "${ORGS[@]}"; do
		retry 60 chaincode_ready "$org" || die "peer.$org cannot reach its chaincode server; see $dir/logs"
		retry 90 peers_known "$org" || die "peer.$org has not discovered the other peers; see $dir/logs/peer.$org.log"
	done
	write_profile
	log "network is up; connection profile: $dir/profile.json"
	echo "$dir/profile.json"
}

cmd_down() {
	if [[ ! -d "$dir" ]]; then
		log "nothing to stop in $dir"
		return 0
	fi
	[[ -f "$dir/$MARKER" ]] || die "$dir is not a medprov network directory; not touching it"
	local name pattern
	# Chaincode servers first, then peers, orderers last.
	for pattern in 'chaincode.*' 'peer.*' 'orderer*'; do
		for name in "$dir"/run/$pattern.pid; do
			[[ -e "$name" ]] || continue
			name="$(basename "$name" .pid)"
			stop_proc "$name"
		done
	done
	rm -rf "$dir"
	log "network stopped and $dir removed"
}

cmd_status() {
	if [[ ! -f "$dir/network.env" ]]; then
		echo "no network in $dir"
		return 3
	fi
	load_settings
	local name all=0 pid
	echo "network in $dir (base port $base, $consensus, $orderers orderer(s))"
	for name in $(components); do
		if running "$name"; then
			pid="$(cat "$dir/run/$name.pid")"
			printf '  %-20s running (pid %s)\n' "$name" "$pid"
		else
			printf '  %-20s stopped\n' "$name"
			all=3
		fi
	done
	[[ -f "$dir/profile.json" ]] && echo "  profile: $dir/profile.json"
	return "$all"
}

cmd_stop() {
	[[ -n "$component" ]] || die "stop needs a component: $(components 2>/dev/null | tr '\n' ' ')"
	[[ -f "$dir/network.env" ]] || die "no network in $dir"
	load_settings
	[[ " $(components | tr '\n' ' ') " == *" $component "* ]] || die "unknown component $component"
	stop_proc "$component"
	log "$component stopped"
}

# chaincode_cli_setup prepares the peer CLI calls of invoke and query on a
# network that was started.
chaincode_cli_setup() {
	[[ -f "$dir/network.env" ]] || die "no network in $dir"
	load_settings
	org_msp "$cli_org" >/dev/null
	((${#cli_args[@]})) || die "$cmd needs a chaincode function"
	bin="$("$repo/scripts/fabric.sh" bin-dir)"
	export PATH="$bin:$PATH"
}

# chaincode_input prints the peer CLI's -c argument for cli_args:
# {"Args":[FUNCTION, ARG...]}, every argument a JSON string.
chaincode_input() {
	jq -cn '{Args: $ARGS.positional}' --args -- "${cli_args[@]}"
}

cmd_invoke() {
	chaincode_cli_setup
	local peers=() org out txid o
	for org in "${ORGS[@]}"; do
		peers+=(--peerAddresses "127.0.0.1:$(peer_port "$org")" --tlsRootCertFiles "$(peer_tlsca "$org")")
	done
	o="$(submit_orderer)"
	# The CLI logs the committed transaction ID at info level only.
	if ! out="$(as_admin "$cli_org" env FABRIC_LOGGING_SPEC='chaincodeCmd=info:warning' \
		peer chaincode invoke -o "127.0.0.1:$(orderer_port "$o")" --tls --cafile "$(orderer_tlsca "$o")" \
		-C "$CHANNEL" -n "$CC_NAME" "${peers[@]}" --waitForEvent \
		-c "$(chaincode_input)" 2>&1)"; then
		echo "$out" >&2
		return 1
	fi
	txid="$(sed -n 's/.*txid \[\([0-9a-f]\{1,\}\)\] committed with status (VALID).*/\1/p' <<<"$out" | head -n 1)"
	[[ -n "$txid" ]] || die "peer chaincode invoke reported no valid commit: $out"
	echo "$txid"
}

cmd_query() {
	chaincode_cli_setup
	as_admin "$cli_org" peer chaincode query -C "$CHANNEL" -n "$CC_NAME" -c "$(chaincode_input)"
}

cmd_block() {
	((${#cli_args[@]} == 1)) && [[ "${cli_args[0]}" =~ ^[0-9]+$ ]] || die "block needs one block number"
	chaincode_cli_setup
	as_admin "$cli_org" peer chaincode query -C "$CHANNEL" -n qscc --hex \
		-c "$(jq -cn --arg ch "$CHANNEL" --arg n "${cli_args[0]}" '{Args: ["GetBlockByNumber", $ch, $n]}')"
}

case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
stop) cmd_stop ;;
profile) echo "$dir/profile.json" ;;
invoke) cmd_invoke ;;
query) cmd_query ;;
block) cmd_block ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
