import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fromHex } from '../../src/bytes.js';
import { decryptKeystore, encryptKeystore, type KeystoreFile } from '../../src/crypto/keystore.js';

// Tests use n = 2^10 (the smallest accepted) so that each scrypt run takes milliseconds.
const FAST = { n: 2 ** 10, r: 8, p: 1 };
const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);
const PASSWORD = 'correct horse battery staple';
const RANDOM = { salt: new Uint8Array(32).fill(0x11), iv: new Uint8Array(12).fill(0x22) };

function encrypt(): KeystoreFile {
  return encryptKeystore(SECRET, PASSWORD, RANDOM, FAST);
}

/** A deep copy as a plain JSON value, the way a keystore arrives from disk. */
function reparse(file: unknown): Json {
  return JSON.parse(JSON.stringify(file)) as Json;
}

type Json = Record<string, unknown>;

/** The nested object at `path` inside a reparsed keystore, for editing in place. */
function at(file: Json, ...path: string[]): Json {
  let node = file;
  for (const key of path) node = node[key] as Json;
  return node;
}

function flipHexByte(hex: string, index: number): string {
  const bytes = fromHex(hex);
  bytes[index]! ^= 0x01;
  return Buffer.from(bytes).toString('hex');
}

function throwsCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal((error as { code?: unknown }).code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('keystore: format and round trip', () => {
  test('known answer: matches an independent scrypt + AES-256-GCM (Python hashlib + cryptography)', () => {
    const file = encrypt();
    assert.deepEqual(reparse(file), {
      version: 1,
      crypto: {
        cipher: 'aes-256-gcm',
        cipherparams: { iv: '22'.repeat(12) },
        ciphertext: '7019b9a138fd5c6a63c0222f72743f1fdde27a631fa84634e584cde323bbaba7',
        tag: 'e6ff3cca83117cf31d5346a17eeef75f',
        kdf: 'scrypt',
        kdfparams: { n: 1024, r: 8, p: 1, dklen: 32, salt: '11'.repeat(32) },
      },
    });
  });

  test('round trip, also through JSON text', () => {
    const file = encrypt();
    assert.deepEqual(decryptKeystore(file, PASSWORD), SECRET);
    assert.deepEqual(decryptKeystore(JSON.parse(JSON.stringify(file)), PASSWORD), SECRET);
  });

  test('default parameters are n = 2^15, r = 8, p = 1 and work', () => {
    const file = encryptKeystore(SECRET, '', RANDOM);
    assert.deepEqual(file.crypto.kdfparams, { n: 2 ** 15, r: 8, p: 1, dklen: 32, salt: '11'.repeat(32) });
    assert.deepEqual(decryptKeystore(file, ''), SECRET);
  });

  test('passwords are compared after NFKC normalization', () => {
    const file = encryptKeystore(SECRET, 'caf\u00e9', RANDOM, FAST);
    assert.deepEqual(decryptKeystore(file, 'cafe\u0301'), SECRET);
  });

  test('metadata beside `crypto` is tolerated', () => {
    const file = { ...reparse(encrypt()), address: 'unc1…', label: 'savings' };
    assert.deepEqual(decryptKeystore(file, PASSWORD), SECRET);
  });

  test('encrypt refuses bad inputs', () => {
    throwsCode(() => encryptKeystore(new Uint8Array(31), PASSWORD, RANDOM, FAST), 'BAD_KEYSTORE', /secret/);
    throwsCode(
      () => encryptKeystore(SECRET, PASSWORD, { ...RANDOM, salt: new Uint8Array(16) }, FAST),
      'BAD_KEYSTORE',
    );
    throwsCode(
      () => encryptKeystore(SECRET, PASSWORD, { ...RANDOM, iv: new Uint8Array(16) }, FAST),
      'BAD_KEYSTORE',
    );
    throwsCode(
      () => encryptKeystore(SECRET, PASSWORD, RANDOM, { n: 1000, r: 8, p: 1 }),
      'BAD_KEYSTORE',
      /power of two/,
    );
    throwsCode(() => encryptKeystore(SECRET, 7 as unknown as string, RANDOM, FAST), 'BAD_KEYSTORE');
  });
});

describe('keystore: wrong password and tampering', () => {
  const file = reparse(encrypt());

  test('wrong password', () => {
    for (const password of ['', 'correct horse battery stapl', 'Correct horse battery staple']) {
      throwsCode(
        () => decryptKeystore(file, password),
        'WRONG_PASSWORD',
        /^wrong password or corrupted keystore$/,
      );
    }
  });

  const fields: [string, (f: Json) => Json, string, number][] = [
    ['ciphertext', (f) => at(f, 'crypto'), 'ciphertext', 32],
    ['tag', (f) => at(f, 'crypto'), 'tag', 16],
    ['iv', (f) => at(f, 'crypto', 'cipherparams'), 'iv', 12],
    ['salt', (f) => at(f, 'crypto', 'kdfparams'), 'salt', 32],
  ];
  for (const [name, holder, key, length] of fields) {
    test(`every tampered byte of ${name} is detected`, () => {
      for (let i = 0; i < length; i++) {
        const tampered = reparse(file);
        const target = holder(tampered);
        target[key] = flipHexByte(target[key] as string, i);
        throwsCode(() => decryptKeystore(tampered, PASSWORD), 'WRONG_PASSWORD');
      }
    });
  }

  test('changed scrypt parameters are detected', () => {
    for (const [key, value] of [
      ['n', 2048],
      ['r', 4],
      ['p', 2],
    ] as const) {
      const tampered = reparse(file);
      at(tampered, 'crypto', 'kdfparams')[key] = value;
      throwsCode(() => decryptKeystore(tampered, PASSWORD), 'WRONG_PASSWORD');
    }
  });
});

describe('keystore: malformed files', () => {
  const good = reparse(encrypt());
  type Edit = (f: Json) => void;
  const cases: [string, Edit | unknown, RegExp][] = [
    ['null', null, /not an object/],
    ['array', [], /not an object/],
    ['string', 'keystore', /not an object/],
    ['version 2', ((f) => void (f.version = 2)) as Edit, /unsupported version 2/],
    ['version "1"', ((f) => void (f.version = '1')) as Edit, /unsupported version "1"/],
    ['no version', ((f) => void delete f.version) as Edit, /unsupported version/],
    ['crypto missing', ((f) => void delete f.crypto) as Edit, /crypto must be an object/],
    ['crypto array', ((f) => void (f.crypto = [])) as Edit, /crypto must be an object/],
    [
      'cipher aes-128-gcm',
      ((f) => void (at(f, 'crypto').cipher = 'aes-128-gcm')) as Edit,
      /unsupported cipher/,
    ],
    ['kdf pbkdf2', ((f) => void (at(f, 'crypto').kdf = 'pbkdf2')) as Edit, /unsupported kdf/],
    ['extra crypto field', ((f) => void (at(f, 'crypto').mac = '00')) as Edit, /crypto\.mac is not expected/],
    ['tag missing', ((f) => void delete at(f, 'crypto').tag) as Edit, /crypto\.tag is missing/],
    [
      'extra kdfparams field',
      ((f) => void (at(f, 'crypto', 'kdfparams').maxmem = 1)) as Edit,
      /crypto\.kdfparams\.maxmem is not expected/,
    ],
    [
      'cipherparams not object',
      ((f) => void (at(f, 'crypto').cipherparams = 'x')) as Edit,
      /cipherparams must be/,
    ],
    [
      'iv too short',
      ((f) => void (at(f, 'crypto', 'cipherparams').iv = '22'.repeat(11))) as Edit,
      /iv must be 12 bytes/,
    ],
    [
      'iv upper case',
      ((f) => void (at(f, 'crypto', 'cipherparams').iv = 'AA'.repeat(12))) as Edit,
      /lower-case hex/,
    ],
    [
      'iv 0x prefix',
      ((f) => void (at(f, 'crypto', 'cipherparams').iv = `0x${'22'.repeat(12)}`)) as Edit,
      /hex/,
    ],
    ['iv number', ((f) => void (at(f, 'crypto', 'cipherparams').iv = 22)) as Edit, /hex/],
    ['ciphertext odd length', ((f) => void (at(f, 'crypto').ciphertext = 'abc')) as Edit, /hex/],
    ['ciphertext empty', ((f) => void (at(f, 'crypto').ciphertext = '')) as Edit, /hex/],
    [
      'ciphertext 33 bytes',
      ((f) => void (at(f, 'crypto').ciphertext += '00')) as Edit,
      /ciphertext must be 32 bytes/,
    ],
    ['tag 12 bytes', ((f) => void (at(f, 'crypto').tag = '00'.repeat(12))) as Edit, /tag must be 16 bytes/],
    [
      'salt 16 bytes',
      ((f) => void (at(f, 'crypto', 'kdfparams').salt = '11'.repeat(16))) as Edit,
      /salt must be 32 bytes/,
    ],
    ['dklen 64', ((f) => void (at(f, 'crypto', 'kdfparams').dklen = 64)) as Edit, /dklen must be 32/],
    ['n not a power of two', ((f) => void (at(f, 'crypto', 'kdfparams').n = 1000)) as Edit, /power of two/],
    ['n too small', ((f) => void (at(f, 'crypto', 'kdfparams').n = 2 ** 4)) as Edit, /power of two/],
    ['n huge', ((f) => void (at(f, 'crypto', 'kdfparams').n = 2 ** 30)) as Edit, /power of two/],
    ['n string', ((f) => void (at(f, 'crypto', 'kdfparams').n = '1024')) as Edit, /n must be an integer/],
    ['n fractional', ((f) => void (at(f, 'crypto', 'kdfparams').n = 1024.5)) as Edit, /n must be an integer/],
    ['r zero', ((f) => void (at(f, 'crypto', 'kdfparams').r = 0)) as Edit, /scrypt r/],
    ['r huge', ((f) => void (at(f, 'crypto', 'kdfparams').r = 1000)) as Edit, /scrypt r/],
    ['p zero', ((f) => void (at(f, 'crypto', 'kdfparams').p = 0)) as Edit, /scrypt p/],
    ['p huge', ((f) => void (at(f, 'crypto', 'kdfparams').p = 1000)) as Edit, /scrypt p/],
    [
      'memory over 1 GiB',
      ((f) => void Object.assign(at(f, 'crypto', 'kdfparams'), { n: 2 ** 20, r: 16 })) as Edit,
      /1 GiB/,
    ],
    [
      'work too high',
      ((f) => void Object.assign(at(f, 'crypto', 'kdfparams'), { n: 2 ** 20, r: 8, p: 8 })) as Edit,
      /too slow/,
    ],
  ];
  for (const [name, edit, reason] of cases) {
    test(`rejects: ${name}`, () => {
      let file: unknown = edit;
      if (typeof edit === 'function') {
        const copy = reparse(good);
        (edit as Edit)(copy);
        file = copy;
      }
      throwsCode(() => decryptKeystore(file, PASSWORD), 'BAD_KEYSTORE', reason);
    });
  }

  test('a password that is not a string is refused', () => {
    throwsCode(() => decryptKeystore(good, undefined as unknown as string), 'BAD_KEYSTORE');
  });
});
