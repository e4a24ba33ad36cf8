import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { parseAttest, Swtpm, Tpm, type TpmsAttest, verifyAttestSignature } from '../src/index.js';
import { NEED_SWTPM, tempDir } from './helpers.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const message = new Uint8Array(32).fill(0x11);

/** Starts the TPM (Startup of the given type) and returns the AK and a quote's clockInfo. */
async function attestOnce(
  swtpm: Swtpm,
  startup: 'clear' | 'state',
): Promise<{ ak: Uint8Array; attest: TpmsAttest }> {
  const tpm = new Tpm(swtpm.transport());
  try {
    assert.equal(await tpm.startup(startup), true);
    return await tpm.withAk({}, async (ak) => {
      const q = await tpm.quote(ak.handle, message);
      assert.equal(verifyAttestSignature(ak.public, q.attest, q.signature), true);
      return { ak: ak.publicArea, attest: parseAttest(q.attest) };
    });
  } finally {
    await tpm.close();
  }
}

describe('swtpm process', { skip: NEED_SWTPM }, () => {
  test('runs on free local ports, stops by PID and removes its temporary state', async () => {
    const swtpm = await Swtpm.start();
    const pid = swtpm.pid!;
    assert.ok(alive(pid));
    assert.notEqual(swtpm.port, swtpm.ctrlPort);
    assert.equal(swtpm.tcti, `swtpm:host=127.0.0.1,port=${swtpm.port}`);
    assert.ok(existsSync(swtpm.stateDir));
    await swtpm.dispose();
    assert.equal(alive(pid), false);
    assert.equal(existsSync(swtpm.stateDir), false);
  });

  test('a restart on kept state is the same chip, and resetCount shows the reboot', async () => {
    const swtpm = await Swtpm.start({ keepState: true });
    try {
      const first = await attestOnce(swtpm, 'clear');
      const pid = swtpm.pid!;
      await swtpm.restart();
      assert.notEqual(swtpm.pid, pid);
      assert.equal(alive(pid), false);
      const second = await attestOnce(swtpm, 'clear');
      assert.deepEqual(second.ak, first.ak, 'the endorsement seed, hence the AK, survives');
      assert.equal(second.attest.clockInfo.resetCount, first.attest.clockInfo.resetCount + 1);
      assert.equal(second.attest.clockInfo.restartCount, 0);
    } finally {
      await swtpm.stop();
      await swtpm.dispose();
    }
    // keepState was asked for: the directory is the caller's to remove.
    assert.ok(existsSync(swtpm.stateDir));
    const again = await Swtpm.start({ stateDir: swtpm.stateDir, keepState: false });
    await again.dispose();
    assert.equal(existsSync(swtpm.stateDir), false);
  });

  test('an orderly Shutdown(STATE) and Startup(STATE) counts as a restart, not a reset', async () => {
    const dir = await tempDir('unc-swtpm-test-');
    try {
      const swtpm = await Swtpm.start({ stateDir: dir.path });
      try {
        const first = await attestOnce(swtpm, 'clear');
        const tpm = new Tpm(swtpm.transport());
        await tpm.shutdown('state');
        await tpm.close();
        await swtpm.restart();
        const second = await attestOnce(swtpm, 'state');
        assert.equal(second.attest.clockInfo.resetCount, first.attest.clockInfo.resetCount);
        assert.equal(second.attest.clockInfo.restartCount, first.attest.clockInfo.restartCount + 1);
      } finally {
        await swtpm.dispose();
      }
      assert.ok(existsSync(dir.path), 'a caller-supplied state directory is kept by default');
    } finally {
      await dir.remove();
    }
  });

  test('a fresh state directory is a different chip', async () => {
    const a = await Swtpm.start();
    const b = await Swtpm.start();
    try {
      const [x, y] = await Promise.all([attestOnce(a, 'clear'), attestOnce(b, 'clear')]);
      assert.notDeepEqual(x.ak, y.ak);
    } finally {
      await Promise.all([a.dispose(), b.dispose()]);
    }
  });
});
