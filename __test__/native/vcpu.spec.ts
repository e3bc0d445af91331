import test from 'ava';
import { call } from '../../ts/native.js';

test('ten 0.1-CPU containers need exactly 1 vCPU', (t) => {
  const r = call((n) => n.calcSandboxVcpus('0', Array.from({ length: 10 }, () => ({ quotaUs: 100_000, periodUs: 1_000_000 }))));
  t.deepEqual(r._unsafeUnwrap(), { numerator: '1', denominator: '1', exact: '1/1', ceil: 1 });
});
