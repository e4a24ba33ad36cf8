/**
 * A provider's job isolation as an operator sets it (job-isolation-options.ts): the flag beats
 * UNC_JOB_ISOLATION, which beats config.json `provider.jobIsolation`, which beats `auto`; every
 * value given is checked, used or not, and a bad one is refused saying where it came from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UncError } from '@unc/core';
import { jobIsolationOf } from '../src/job-isolation-options.js';

const path = '/h/config.json';

test('job isolation: flag, then UNC_JOB_ISOLATION, then config.json, then auto', () => {
  assert.equal(jobIsolationOf({}, {}, {}, path), 'auto');
  assert.equal(jobIsolationOf({}, {}, { provider: { jobIsolation: 'none' } }, path), 'none');
  assert.equal(
    jobIsolationOf({}, { UNC_JOB_ISOLATION: 'bwrap' }, { provider: { jobIsolation: 'none' } }, path),
    'bwrap',
  );
  assert.equal(
    jobIsolationOf(
      { jobIsolation: 'none' },
      { UNC_JOB_ISOLATION: 'bwrap' },
      { provider: { jobIsolation: 'auto' } },
      path,
    ),
    'none',
  );
  // An empty variable is no setting.
  assert.equal(jobIsolationOf({}, { UNC_JOB_ISOLATION: '' }, {}, path), 'auto');
});

test('job isolation: a bad value anywhere is refused, naming where, even where a later one wins', () => {
  const refused = (code: string, where: RegExp) => (e: unknown) =>
    e instanceof UncError && e.code === code && where.test(e.message);
  assert.throws(
    () => jobIsolationOf({ jobIsolation: 'docker' }, {}, {}, path),
    refused('BAD_ARGUMENT', /--job-isolation/),
  );
  assert.throws(
    () => jobIsolationOf({ jobIsolation: 'none' }, { UNC_JOB_ISOLATION: 'yes' }, {}, path),
    refused('BAD_ARGUMENT', /UNC_JOB_ISOLATION/),
  );
  assert.throws(
    () => jobIsolationOf({ jobIsolation: 'none' }, {}, { provider: { jobIsolation: 1 } }, path),
    refused('BAD_CONFIG', /provider\.jobIsolation/),
  );
  assert.throws(
    () => jobIsolationOf({}, {}, { provider: 'bwrap' }, path),
    refused('BAD_CONFIG', /provider must be/),
  );
});
