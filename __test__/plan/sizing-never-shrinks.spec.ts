// Regression found by __test__/fuzz/plan-properties.spec.ts: with default_memory above the
// maximum (2048 MiB on a 1 GiB host, default_maxmemory = 0), adding the first container "resized"
// the VM down to 1024 MiB. Adding containers never shrinks the VM.
import test from 'ava';
import { EXAMPLE_HOST_FACTS } from '../../ts/plan/host-facts.js';
import { containerSpec, kataConfig, planOf } from './plan-builders.js';

test('boot memory above the maximum is kept when containers are added', (t) => {
  const host = { ...EXAMPLE_HOST_FACTS, hostMemoryMiB: 1024 };
  const p = planOf({
    config: kataConfig({ defaultMemoryMiB: 2048, defaultMaxMemoryMiB: 0 }),
    host,
    containers: [{ id: 'c1', spec: containerSpec([]) }],
  })._unsafeUnwrap();
  t.deepEqual([p.memoryMiB, p.maxMemoryMiB], [2048, 1024]);
  t.deepEqual(
    p.containers.map((c) => c.memoryMiBAfter),
    [2048, 2048],
  );
});

test('memory still grows with container limits up to the maximum', (t) => {
  const withLimit = (id: string, bytes: number) => ({
    id,
    spec: {
      ...containerSpec([]),
      linux: { ...containerSpec([]).linux, resources: { memory: { limit: bytes } } },
    },
  });
  const p = planOf({
    config: kataConfig({ defaultMemoryMiB: 256, defaultMaxMemoryMiB: 1024 }),
    containers: [withLimit('c1', 512 * 1024 * 1024), withLimit('c2', 512 * 1024 * 1024)],
  })._unsafeUnwrap();
  t.deepEqual(
    p.containers.map((c) => c.memoryMiBAfter),
    [512, 1024, 1024],
  );
});
