// One WebTorrent peer for p2pdetect's traffic generator: seed or leech one torrent on one address.
//
// node --openssl-legacy-provider peer.mjs --ip 127.13.0.2 --port 40001 --dht-port 40002 \
//      --torrent swarm.torrent --path DIR [--seed] [--magnet] [--bootstrap ip:port,...] [--no-dht] \
//      [--no-utp] [--no-tcp] [--secure 0|1|2] [--up B/s] [--down B/s] [--peers ip:port,...] [--no-tracker] \
//      [--announce-interval S] [--lookups-per-s R]
//
// --secure: 0 plain BitTorrent only, 1 MSE/PE offered with plaintext allowed (WebTorrent's default),
// 2 MSE/PE with RC4 required (native RC4 needs --openssl-legacy-provider on OpenSSL 3).
// Every socket is bound to --ip (bind.mjs). uTP uses the --port UDP socket, the DHT --dht-port.
// Standard input takes commands, one a line: `peer IP:PORT` (dial a peer), `quit`.
// Standard output gets one JSON status line every --status-interval seconds and at exit.
// SIGTERM/SIGINT or `quit`: the client closes its connections and sockets, then the process exits 0.

import fs from 'node:fs'
import crypto from 'node:crypto'
import readline from 'node:readline'
import { parseArgs } from 'node:util'
import { bindAll } from './bind.mjs'

const { values: opt } = parseArgs({
  options: {
    ip: { type: 'string' },
    port: { type: 'string' },
    'dht-port': { type: 'string' },
    torrent: { type: 'string' },
    path: { type: 'string' },
    seed: { type: 'boolean', default: false },
    magnet: { type: 'boolean', default: false },
    bootstrap: { type: 'string', default: '' },
    'no-dht': { type: 'boolean', default: false },
    'no-utp': { type: 'boolean', default: false },
    'no-tcp': { type: 'boolean', default: false },
    'no-tracker': { type: 'boolean', default: false },
    secure: { type: 'string', default: '1' },
    up: { type: 'string', default: '0' },
    down: { type: 'string', default: '0' },
    peers: { type: 'string', default: '' },
    'max-conns': { type: 'string', default: '40' },
    'announce-interval': { type: 'string', default: '0' },
    'lookups-per-s': { type: 'string', default: '0' },
    'status-interval': { type: 'string', default: '2' }
  },
  strict: true
})

function die (msg) {
  process.stderr.write(`peer.mjs: ${msg}\n`)
  process.exit(2)
}

for (const name of ['ip', 'port', 'torrent', 'path']) if (!opt[name]) die(`--${name} is required`)
if (opt['no-utp'] && opt['no-tcp']) die('--no-utp and --no-tcp leave no transport')
const secure = Number(opt.secure)
if (![0, 1, 2].includes(secure)) die(`--secure must be 0, 1 or 2. Got ${opt.secure} instead.`)
const list = (s) => s.split(',').map(x => x.trim()).filter(Boolean)

bindAll(opt.ip)
// Loaded after the sockets are patched (their modules keep references to net and dgram).
const { default: WebTorrent } = await import('webtorrent')
const { default: Torrent } = await import('webtorrent/lib/torrent.js')
const { default: parseTorrent, toMagnetURI } = await import('parse-torrent')

if (opt['no-tcp']) {
  // A client without TCP: it never falls back to a TCP dial after uTP gives up.
  const addPeer = Torrent.prototype._addPeer
  Torrent.prototype._addPeer = function (peer, type, source) {
    if (type === 'tcp' && typeof peer === 'string') return null
    return addPeer.call(this, peer, type, source)
  }
}

const limit = (v) => (Number(v) > 0 ? Number(v) : -1) // WebTorrent: -1 unlimited, 0 would block
const client = new WebTorrent({
  torrentPort: Number(opt.port),
  dhtPort: Number(opt['dht-port'] || 0),
  dht: opt['no-dht'] ? false : { bootstrap: list(opt.bootstrap) },
  tracker: opt['no-tracker'] ? false : {},
  lsd: false,
  natUpnp: false,
  natPmp: false,
  webSeeds: false,
  utp: !opt['no-utp'],
  secure,
  maxConns: Number(opt['max-conns']),
  uploadLimit: limit(opt.up),
  downloadLimit: limit(opt.down)
})

client.on('error', err => {
  process.stderr.write(`peer.mjs: client error: ${err.message || err}\n`)
})
client.on('listening', () => {
  if (opt['no-tcp'] && client._connPool?.tcpServer) client._connPool.tcpServer.close()
})

const raw = fs.readFileSync(opt.torrent)
const parsed = await parseTorrent(raw)
const source = opt.magnet && !opt.seed ? toMagnetURI({ infoHash: parsed.infoHash, name: parsed.name }) : raw
fs.mkdirSync(opt.path, { recursive: true })
const torrent = client.add(source, { path: opt.path, skipVerify: opt.seed, announce: opt['no-tracker'] ? [] : undefined })
torrent.on('warning', err => process.stderr.write(`peer.mjs: warning: ${err.message || err}\n`))
torrent.on('error', err => process.stderr.write(`peer.mjs: torrent error: ${err.message || err}\n`))

function dial (addr) {
  try {
    torrent.addPeer(addr)
  } catch (err) {
    process.stderr.write(`peer.mjs: cannot dial ${addr}: ${err.message}\n`)
  }
}
if (torrent.infoHash) list(opt.peers).forEach(dial)
else torrent.once('infoHash', () => list(opt.peers).forEach(dial))

const timers = []
const every = (seconds, fn) => { if (seconds > 0) timers.push(setInterval(fn, seconds * 1000)) }
const dht = () => (client.dht && !client.destroyed ? client.dht : null)
// A real client looks its torrent up again and re-announces on a timer of tens of minutes; short runs
// need it sooner. The lookup's get_peers replies bring the peers that announced since (torrent-discovery
// dials them); the announce then goes to the closest nodes the lookup found.
every(Number(opt['announce-interval']), () => {
  if (!torrent.infoHash) return
  dht()?.lookup(torrent.infoHash, () => dht()?.announce(torrent.infoHash, Number(opt.port), () => {}))
})
// Lookups for torrents this user keeps but nobody serves here: get_peers to many distinct nodes.
const rate = Number(opt['lookups-per-s'])
if (rate > 0) {
  const next = () => timers.push(setTimeout(() => {
    dht()?.lookup(crypto.randomBytes(20).toString('hex'), () => {})
    next()
  }, -Math.log(1 - Math.random()) / rate * 1000))
  next()
}

function status (event) {
  const line = {
    event,
    progress: Number((torrent.progress || 0).toFixed(4)),
    peers: torrent.numPeers || 0,
    downloaded: torrent.downloaded || 0,
    uploaded: torrent.uploaded || 0,
    dht_nodes: dht()?.toJSON().nodes.length ?? 0,
    utp: client.utp,
    secure
  }
  process.stdout.write(JSON.stringify(line) + '\n')
}
every(Number(opt['status-interval']), () => status('status'))
torrent.on('done', () => status('done'))

let quitting = false
function quit () {
  if (quitting) return
  quitting = true
  timers.forEach(t => { clearInterval(t); clearTimeout(t) })
  status('exit')
  const force = setTimeout(() => process.exit(0), 3000)
  force.unref()
  client.destroy(() => process.exit(0))
}
process.stdout.on('error', () => {}) // a closed reader must not take the peer down
process.on('SIGTERM', quit)
process.on('SIGINT', quit)
readline.createInterface({ input: process.stdin }).on('line', line => {
  const [cmd, arg] = line.trim().split(/\s+/)
  if (cmd === 'peer' && arg) dial(arg)
  else if (cmd === 'quit') quit()
})
