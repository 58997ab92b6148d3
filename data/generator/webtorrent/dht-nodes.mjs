// A population of mainline DHT nodes (BEP 5) run by bittorrent-dht, the DHT of WebTorrent.
//
// node dht-nodes.mjs SPEC.json
//
// SPEC: {"nodes": [{"ip": "127.15.0.2", "port": 40001, "online": [[join, leave], ...]}, ...],
//        "t0": epoch s, "until": epoch s, "lookups_per_s": 1.0, "bootstrap_k": 8}
// Each node binds its own address and port, bootstraps from `bootstrap_k` random others (as a cached
// node list), and joins and leaves on its schedule (seconds after t0; nodes online at 0 start at once,
// before t0: the DHT exists when the clients arrive). Random live nodes look up random info-hashes at
// `lookups_per_s` (other users' searches) and sometimes announce them. Nodes that left stay in the
// others' routing tables and draw queries nobody answers, as gone nodes do in the real DHT.
// SIGTERM/SIGINT: every node closes its socket, then the process exits 0.

import crypto from 'node:crypto'
import fs from 'node:fs'
import DHT from 'bittorrent-dht'

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const everyone = spec.nodes.map(n => `${n.ip}:${n.port}`)
const k = spec.bootstrap_k ?? 8
const rate = Number(spec.lookups_per_s ?? 1)
const live = new Map()

function sample (list, n) {
  const copy = list.slice()
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]]
  }
  return copy.slice(0, n)
}

function start (i) {
  const n = spec.nodes[i]
  const dht = new DHT({ bootstrap: sample(everyone.filter(e => e !== `${n.ip}:${n.port}`), k) })
  dht.on('error', err => process.stderr.write(`dht-nodes: ${n.ip}:${n.port}: ${err.message}\n`))
  dht.on('warning', () => {})
  dht.listen(n.port, n.ip)
  live.set(i, dht)
}

function stop (i) {
  live.get(i)?.destroy()
  live.delete(i)
}

function tick () {
  const now = Math.max(Date.now() / 1000 - spec.t0, 0)
  spec.nodes.forEach((n, i) => {
    const want = n.online.some(([a, b]) => a <= now && now < b)
    if (want && !live.has(i)) start(i)
    else if (!want && live.has(i)) stop(i)
  })
  if (Date.now() / 1000 >= spec.until) quit()
}

function lookup () {
  const nodes = [...live.values()]
  if (nodes.length) {
    const dht = nodes[Math.floor(Math.random() * nodes.length)]
    const target = crypto.randomBytes(20).toString('hex')
    if (Math.random() < 0.3) dht.announce(target, 1025 + Math.floor(Math.random() * 64000), () => {})
    else dht.lookup(target, () => {})
  }
  if (rate > 0) setTimeout(lookup, -Math.log(1 - Math.random()) / rate * 1000)
}

let quitting = false
function quit () {
  if (quitting) return
  quitting = true
  process.stdout.write(JSON.stringify({ event: 'exit', live: live.size, nodes: spec.nodes.length }) + '\n')
  for (const i of [...live.keys()]) stop(i)
  setTimeout(() => process.exit(0), 200)
}
process.on('SIGTERM', quit)
process.on('SIGINT', quit)

tick()
setInterval(tick, 100)
if (rate > 0) setTimeout(lookup, 1000)
