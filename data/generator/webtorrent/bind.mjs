// Pin every socket of this Node process to one local IPv4 address.
//
// Why: WebTorrent listens on 0.0.0.0 and dials without a local address, so on a loopback full of
// 127.x peers its packets would leave from 127.0.0.1 and it would answer connections meant for
// other peers on the same port. The generator labels flows by address pair, so each peer must use
// its own address only. Node's TCP (net), UDP (dgram: DHT, UDP trackers) and utp-native sockets are
// bound to `ip` unless the caller names an address itself.

import dgram from 'node:dgram'
import net from 'node:net'
import { createRequire } from 'node:module'

const isPort = (v) => typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v))

export function bindAll (ip) {
  const listen = net.Server.prototype.listen
  net.Server.prototype.listen = function (...args) {
    if (args[0] !== null && typeof args[0] === 'object') {
      if (args[0].path === undefined) args[0] = { ...args[0], host: args[0].host ?? ip }
    } else if (isPort(args[0])) {
      if (typeof args[1] !== 'string') args.splice(1, 0, ip)
    } else if (args.length === 0 || typeof args[0] === 'function') {
      args.unshift(0, ip)
    }
    return listen.apply(this, args)
  }

  const connect = net.Socket.prototype.connect
  net.Socket.prototype.connect = function (...args) {
    // net.connect() hands over its normalised arguments as an array: [options, callback]
    const options = Array.isArray(args[0]) ? args[0][0] : args[0]
    if (options !== null && typeof options === 'object') {
      if (options.path == null && options.localAddress == null) options.localAddress = ip
    } else if (isPort(options)) {
      const host = typeof args[1] === 'string' ? args[1] : undefined
      args = [{ port: Number(options), host, localAddress: ip }, ...args.slice(host === undefined ? 1 : 2)]
    }
    return connect.apply(this, args)
  }

  const bind = dgram.Socket.prototype.bind
  dgram.Socket.prototype.bind = function (...args) {
    // Node binds an unbound socket itself before its first send, through this method too.
    if (args[0] !== null && typeof args[0] === 'object') {
      args[0] = { ...args[0], address: args[0].address ?? ip }
    } else if (args.length === 0 || typeof args[0] === 'function') {
      args.unshift(0, ip)
    } else if (typeof args[1] !== 'string') {
      args.splice(1, 0, ip)
    }
    return bind.apply(this, args)
  }

  let UTP = null
  try {
    UTP = createRequire(import.meta.url)('utp-native')
  } catch {
    return // no uTP here: WebTorrent runs TCP only, and says so itself
  }
  const ubind = UTP.prototype.bind
  UTP.prototype.bind = function (port, addr, onlistening) {
    if (typeof port === 'function') return ubind.call(this, 0, ip, port)
    if (typeof addr === 'function') return ubind.call(this, port || 0, ip, addr)
    return ubind.call(this, port || 0, addr || ip, onlistening)
  }
}
