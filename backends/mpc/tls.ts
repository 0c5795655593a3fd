/**
 * TLS 1.3 on every PIC link (client to server, server to dealer, client to dealer; the CKKS service's
 * client to server). This file holds identities and trust; net.ts opens and accepts the connections.
 *
 * - An identity is a certificate and its private key (PEM). A listening party (server, dealer) has
 *   one: given (`--cert`, `--key`) or generated at first start (ECDSA P-256, self-signed, through the
 *   `selfsigned` package on node:crypto's webcrypto) and stored in the state directory, so a restart
 *   keeps the same certificate. A peer is known by its certificate's fingerprint: the SHA-256 of the
 *   DER certificate, lowercase hex (`pic serve` and `pic dealer` print `certificate sha256 HEX`).
 * - A connecting party trusts a peer by a pin (the expected fingerprint; a mismatch refuses the
 *   connection before anything is sent), else by a known-hosts file (trust on first use: the first
 *   fingerprint seen for HOST:PORT is recorded and announced, a later different one is refused), else
 *   (API only, no file given) it accepts any certificate: encrypted, not authenticated, said in `log`.
 * - Sessions are bound to TLS connections by exporters (RFC 8446 section 7.5): both ends of one TLS
 *   connection compute the same secret for a label, nobody else can (see party.ts and dealer.ts).
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TLSSocket } from 'node:tls'
import selfsigned from 'selfsigned'
import { ProtocolError } from './net.js'

/** The only protocol version PIC speaks (min and max of every context). */
export const TLS_VERSION = 'TLSv1.3'

/** A certificate and its private key (PEM), and the certificate's fingerprint. */
export interface Identity {
  cert: string
  key: string
  fingerprint: string
}

/** SHA-256 of a DER certificate, lowercase hex. */
export function certFingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex')
}

/** An identity from PEM text: the certificate must parse and the key must be its key. */
export function identityFromPem(cert: string, key: string, what: string): Identity {
  let x: X509Certificate
  try {
    x = new X509Certificate(cert)
  } catch {
    throw new ProtocolError(`${what}: not a PEM certificate`)
  }
  let ok: boolean
  try {
    ok = x.checkPrivateKey(createPrivateKey(key))
  } catch {
    throw new ProtocolError(`${what}: the key is not a PEM private key`)
  }
  if (!ok) throw new ProtocolError(`${what}: the key does not belong to the certificate`)
  return { cert, key, fingerprint: certFingerprint(x.raw) }
}

/** A fresh self-signed ECDSA P-256 identity (valid ten years; peers pin it, nobody checks a chain). */
export async function generateIdentity(commonName: string): Promise<Identity> {
  const notAfterDate = new Date()
  notAfterDate.setFullYear(notAfterDate.getFullYear() + 10)
  const r = await selfsigned.generate([{ name: 'commonName', value: commonName }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notAfterDate })
  return identityFromPem(r.cert, r.private, commonName)
}

/** Where PIC keeps identities and known hosts: $PIC_STATE_DIR, else $XDG_CONFIG_HOME/pic, else ~/.config/pic. */
export function defaultStateDir(): string {
  if (process.env.PIC_STATE_DIR) return process.env.PIC_STATE_DIR
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config')
  return path.join(base, 'pic')
}

/**
 * The identity of a listening party: from `cert` and `key` (PEM files) when given, else
 * STATE_DIR/NAME.cert.pem and NAME.key.pem, generated and written (key mode 0600) the first time.
 * `log` says when one is generated.
 */
export async function loadIdentity(o: { cert?: string; key?: string; stateDir: string; name: 'server' | 'dealer'; log?: (msg: string) => void }): Promise<Identity> {
  if ((o.cert === undefined) !== (o.key === undefined)) throw new ProtocolError('give both --cert and --key, or neither')
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8')
    } catch (e) {
      throw new ProtocolError(`cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
  }
  if (o.cert !== undefined && o.key !== undefined) return identityFromPem(read(o.cert), read(o.key), o.cert)
  const certFile = path.join(o.stateDir, `${o.name}.cert.pem`)
  const keyFile = path.join(o.stateDir, `${o.name}.key.pem`)
  if (existsSync(certFile) || existsSync(keyFile)) return identityFromPem(read(certFile), read(keyFile), certFile)
  const id = await generateIdentity(`pic ${o.name}`)
  try {
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 })
    writeFileSync(keyFile, id.key, { mode: 0o600, flag: 'wx' })
    writeFileSync(certFile, id.cert, { flag: 'wx' })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      // another process of the same state directory generated one at the same time: use its
      await new Promise((r) => setTimeout(r, 200))
      return identityFromPem(read(certFile), read(keyFile), certFile)
    }
    throw new ProtocolError(`cannot store the ${o.name} certificate in ${o.stateDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  o.log?.(`generated a ${o.name} certificate in ${certFile} (kept across restarts)`)
  return id
}

/** A fingerprint as given by a user: 64 hex digits, colons allowed, any case; lowercase hex out. */
export function parseFingerprint(s: string, what: string): string {
  const h = s.replace(/:/g, '').toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(h)) throw new ProtocolError(`${what} must be a SHA-256 fingerprint (64 hex digits), got '${s}'`)
  return h
}

/** How a connecting party decides to trust the certificate its peer presents. */
export interface Trust {
  /** The pinned SHA-256 of the peer's certificate: anything else is refused. */
  fingerprint?: string
  /** Without a pin: a known-hosts file (trust on first use). */
  knownHosts?: string
  /** Where first-use and unauthenticated connections are announced. */
  log?: (msg: string) => void
}

/** Decide on the certificate `fp` presented by `name` at `where` (HOST:PORT); throws to refuse. */
export function checkPeer(fp: string, name: string, where: string, trust: Trust): void {
  if (trust.fingerprint !== undefined) {
    if (fp !== trust.fingerprint) throw new ProtocolError(`${name} at ${where} presented certificate sha256 ${fp}, not the pinned ${trust.fingerprint}: refused`)
    return
  }
  if (trust.knownHosts === undefined) {
    trust.log?.(`warning: ${name} at ${where} is not authenticated (certificate sha256 ${fp} accepted without a pin)`)
    return
  }
  const file = trust.knownHosts
  let known: string | undefined
  if (existsSync(file))
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [h, f] = line.trim().split(/\s+/)
      if (h === where && f) known = f
    }
  if (known === fp) return
  if (known !== undefined)
    throw new ProtocolError(`${name} at ${where} presented certificate sha256 ${fp}, but ${file} recorded ${known} on first use: refused (pin the new one if it changed on purpose)`)
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    appendFileSync(file, `${where} ${fp}\n`)
  } catch (e) {
    throw new ProtocolError(`cannot record ${name}'s certificate in ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  trust.log?.(`trusting ${name} at ${where} on first use: certificate sha256 ${fp} (recorded in ${file}; pin it to be sure)`)
}

/** The known-hosts file in a state directory. */
export function knownHostsIn(stateDir: string): string {
  return path.join(stateDir, 'known_hosts')
}

/** Exporter labels (RFC 8446 7.5): the client-server session id, and a party's own dealer link. */
export const SESSION_LABEL = 'EXPORTER-pic-session-id'
export const DEALER_LINK_LABEL = 'EXPORTER-pic-dealer-link'

/** 16 bytes of a TLS connection's exporter for `label`, hex (both ends compute the same). */
export function exporterHex(sock: TLSSocket, label: string): string {
  return sock.exportKeyingMaterial(16, label, Buffer.alloc(0)).toString('hex')
}

/** The line every command prints on every start with --insecure-plaintext. */
export function plaintextWarning(what: string): string {
  return `warning: --insecure-plaintext: the ${what}'s links are plain TCP, neither encrypted nor authenticated (for debugging only)`
}
