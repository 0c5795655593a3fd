/**
 * The key holder's side of a CKKS plan, shared by `pic run` (one process) and `pic query` (the client):
 * key generation (exactly the Galois steps and relinearization the plan lists), packing and
 * encryption of an input, decryption and decoding of the outputs, and the client-aided refresh
 * (decrypt to the plaintext's integer coefficients, rescale them exactly to the scale asked for and
 * encrypt them at the level asked for: refresh.ts, `liftCoefficients`; no float64 decode/encode). Evaluation keys can be
 * serialized seeded (SEAL replaces the uniform half of every key by the seed of its PRNG) and
 * compressed, the form `pic query` uploads; inputs and refreshed values are encrypted with the secret
 * key (symmetric encryption, also seeded: half the bytes of a public-key encryption).
 */
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import type { ClientPart } from './clientpart.js'
import { encodeAt, type Ct, type Evaluator, type Encoder } from './evaluate.js'
import { galoisGroups } from './wire.js'
import { makeContext, type SealContext, type SEALLibrary } from './seal.js'
import { packInput, unpackOutput, type LayoutOf } from './simulate.js'
import { coefficientsOf, liftCoefficients, plaintextOf, type RnsEnv } from './refresh.js'

type KeyGen = ReturnType<SEALLibrary['KeyGenerator']>
type Serial = ReturnType<KeyGen['createPublicKeySerializable']>

export interface SerializedKeys {
  publicKey: Uint8Array
  relinKeys?: Uint8Array
  /** One blob per group of steps (wire.ts galoisGroups). */
  galoisKeys?: Uint8Array[]
}

export interface KeyBytes {
  publicKey: number
  relinKeys: number
  galoisKeys: number
  total: number
}

export class KeyHolder {
  readonly sc: SealContext
  readonly encoder: Encoder
  readonly ev: Evaluator
  private readonly kg: KeyGen
  private readonly sk: ReturnType<KeyGen['secretKey']>
  private readonly decryptor: ReturnType<SEALLibrary['Decryptor']>
  private readonly symmetric: ReturnType<SEALLibrary['Encryptor']>
  private readonly pk: ReturnType<KeyGen['createPublicKey']>
  readonly keygenMs: number

  constructor(
    readonly seal: SEALLibrary,
    readonly layout: LayoutOf & { keys: { rotations: number[]; relin: boolean } },
  ) {
    this.sc = makeContext(seal, layout.params)
    const got = this.sc.primes.map(String)
    if (got.join(',') !== layout.params.primeValues.slice(0, got.length).join(',')) throw new Error('SEAL chose other primes than the plan assumed')
    const t0 = performance.now()
    this.kg = seal.KeyGenerator(this.sc.context)
    this.sk = this.kg.secretKey()
    this.pk = this.kg.createPublicKey()
    this.keygenMs = performance.now() - t0
    this.encoder = seal.CKKSEncoder(this.sc.context)
    this.ev = seal.Evaluator(this.sc.context)
    this.decryptor = seal.Decryptor(this.sc.context, this.sk)
    this.symmetric = seal.Encryptor(this.sc.context, this.pk, this.sk)
  }

  /** The evaluation keys as objects (the one-process run uses them directly). */
  evaluationKeys(): { pk: ReturnType<KeyGen['createPublicKey']>; rk?: ReturnType<KeyGen['createRelinKeys']>; gk?: ReturnType<KeyGen['createGaloisKeys']> } {
    const { rotations, relin } = this.layout.keys
    return {
      pk: this.pk,
      rk: relin ? this.kg.createRelinKeys() : undefined,
      gk: rotations.length > 0 ? this.kg.createGaloisKeys(Int32Array.from(rotations)) : undefined,
    }
  }

  /** The public and evaluation keys serialized seeded and zstd-compressed (what is uploaded). */
  serializedKeys(): SerializedKeys {
    const { rotations, relin } = this.layout.keys
    const z = this.seal.ComprModeType.zstd
    const save = (s: Serial) => {
      try {
        return s.saveArray(z)
      } finally {
        s.delete()
      }
    }
    return {
      publicKey: save(this.kg.createPublicKeySerializable()),
      relinKeys: relin ? save(this.kg.createRelinKeysSerializable()) : undefined,
      galoisKeys: rotations.length > 0 ? galoisGroups(rotations).map((g) => save(this.kg.createGaloisKeysSerializable(Int32Array.from(g)))) : undefined,
    }
  }

  /** Bytes of the keys as plain (not seeded, not compressed) serializations, for comparison. */
  unseededKeyBytes(): KeyBytes {
    const n = this.seal.ComprModeType.none
    const publicKey = this.pk.saveArray(n).length
    const rk = this.layout.keys.relin ? this.kg.createRelinKeys() : undefined
    const relinKeys = rk ? rk.saveArray(n).length : 0
    rk?.delete()
    // group by group, as uploaded: all of them at once need twice the heap
    let galoisKeys = 0
    for (const g of galoisGroups(this.layout.keys.rotations)) {
      const gk = this.kg.createGaloisKeys(Int32Array.from(g))
      galoisKeys += gk.saveArray(n).length
      gk.delete()
    }
    return { publicKey, relinKeys, galoisKeys, total: publicKey + relinKeys + galoisKeys }
  }

  /** Encrypt one inference's input values (flat, K images) into the input layout: objects for the local run. */
  encryptInput(x: Float64Array, index = 0): Ct[] {
    const inp = this.layout.inputs[index]
    return packInput(this.layout, index, x).map((v, j) => {
      const pt = encodeAt(this.sc, this.encoder, this.ev, v, inp.scale, inp.levels[j])
      const ct = this.symmetric.encryptSymmetric(pt)!
      pt.delete()
      return ct
    })
  }

  /** The same, serialized seeded and compressed (what `pic query` sends). */
  encryptInputBytes(x: Float64Array, index = 0): Uint8Array[] {
    const inp = this.layout.inputs[index]
    return packInput(this.layout, index, x).map((v, j) => this.encryptBytes(v, inp.scale, inp.levels[j]))
  }

  private encryptBytes(v: Float64Array, scale: number, level: number): Uint8Array {
    const pt = encodeAt(this.sc, this.encoder, this.ev, v, scale, level)
    const s = this.symmetric.encryptSymmetricSerializable(pt)
    pt.delete()
    try {
      return s.saveArray(this.seal.ComprModeType.zstd)
    } finally {
      s.delete()
    }
  }

  /** Every slot of a ciphertext, decrypted and decoded. */
  decryptSlots(ct: Ct): Float64Array {
    const dec = this.decryptor.decrypt(ct)!
    const vals = this.encoder.decode(dec)
    dec.delete()
    return Float64Array.from(vals)
  }

  /**
   * The centered integer coefficients of the plaintext `ct` decrypts to (exact: inverse NTT and CRT).
   * What the key holder sees at a refresh; for tests and measurements.
   */
  decryptCoefficients(ct: Ct): bigint[] {
    const dec = this.decryptor.decrypt(ct)!
    try {
      return coefficientsOf(this.rnsEnv, ct.coeffModulusSize - 1, dec)
    } finally {
      dec.delete()
    }
  }

  private get rnsEnv(): RnsEnv {
    return { seal: this.seal, sc: this.sc, ev: this.ev, encoder: this.encoder, encryptor: this.symmetric, params: this.layout.params }
  }

  /** The refreshed plaintext: round(Re(v) scale / ct.scale) at `level`, v = ct's decrypted coefficients. */
  private lifted(ct: Ct, level: number, scale: number): ReturnType<typeof plaintextOf> {
    return plaintextOf(this.rnsEnv, level, liftCoefficients(this.decryptCoefficients(ct), ct.scale, scale), scale)
  }

  /** Output k's elements from its ciphertext. */
  decryptOutput(ct: Ct, k: number): Float64Array {
    return unpackOutput(this.layout, k, this.decryptSlots(ct))
  }

  loadCiphertext(bytes: Uint8Array): Ct {
    const ct = this.seal.CipherText()
    ct.loadArray(this.sc.context, bytes)
    return ct
  }

  /**
   * A client-aided refresh: the real parts of `ct`'s slots re-encrypted fresh at `level` and
   * `scale`, exactly in the coefficient domain (refresh.ts). The key holder sees what it decrypts:
   * the server masks it first (refresh.ts, the default), unless run with --refresh-mask off.
   */
  refresh(ct: Ct, level: number, scale: number): Ct {
    const pt = this.lifted(ct, level, scale)
    try {
      return this.symmetric.encryptSymmetric(pt)!
    } finally {
      pt.delete()
    }
  }

  /** The refresh on serialized ciphertexts (the client's answer to a server's request). */
  refreshBytes(bytes: Uint8Array, level: number, scale: number): Uint8Array {
    const ct = this.loadCiphertext(bytes)
    let pt: ReturnType<typeof plaintextOf> | undefined
    try {
      pt = this.lifted(ct, level, scale)
      const s = this.symmetric.encryptSymmetricSerializable(pt)
      try {
        return s.saveArray(this.seal.ComprModeType.zstd)
      } finally {
        s.delete()
      }
    } finally {
      pt?.delete()
      ct.delete()
    }
  }

  dispose(): void {
    for (const o of [this.symmetric, this.decryptor, this.encoder, this.ev, this.pk, this.sk, this.kg]) o.delete()
    this.sc.context.delete()
  }
}

/** The client-side view of a client part (for KeyHolder). */
export function holderLayout(part: ClientPart, view: LayoutOf): LayoutOf & { keys: ClientPart['keys'] } {
  return { ...view, keys: part.keys }
}

/** Elements per image of the client part's first output (batch dimension removed). */
export function outputSizeOf(shape: readonly number[]): number {
  return sizeOf(shape.slice(1))
}

export type { Tensor }
