// Two containers of one pod share the pod's network (the guest's, configured from the pod netns):
// the sandbox container serves HTTP on port 8081, the app container fetches it from 127.0.0.1,
// through the lifecycle's production path (createSandbox, addContainer ×2, deleteSandbox), once
// per agent image. Afterwards nothing of the pod is left, in the netns (tap, qdisc) or on the host.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  addContainer,
  pumpOutput,
  removeContainer,
  startContainer,
  wait,
} from '../../ts/lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../../ts/lifecycle/errors.js';
import { createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { needs } from '../harness/prereq.js';
import { leftovers, podFixture, ROOTFS_IMAGE, type PodFixture } from '../guest/guest-fixture.js';
import { forEachGuestImage } from '../guest/guest-images.js';
import { makePodNetns, tcResidue } from './netns-fixture.js';

const SERVE =
  "printf 'HTTP/1.0 200 OK\\r\\nContent-Length: 12\\r\\n\\r\\nfrom-sandbox' | nc -l -p 8081";
const FETCH =
  'i=0; until wget -q -O - http://127.0.0.1:8081/; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.3; done';

function ok<T>(
  r: { isErr(): boolean; _unsafeUnwrap(): T; _unsafeUnwrapErr(): LifecycleError },
  f: PodFixture,
): T {
  if (r.isErr()) throw new Error(formatLifecycleError(r._unsafeUnwrapErr()).join('\n') + f.dir);
  return r._unsafeUnwrap();
}

forEachGuestImage(
  'two containers of a networked pod share localhost; delete leaves no tap or qdisc',
  async (t, img) => {
    const net = makePodNetns(t);
    const f = podFixture('virtio-blk-pci', ['sh', '-c', SERVE], ['sh', '-c', FETCH], img.image);
    t.teardown(() => f.cleanup());
    const config = path.join(f.sandboxBundle, 'config.json');
    const spec = JSON.parse(readFileSync(config, 'utf8'));
    spec.linux.namespaces = [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'network', path: net.path },
    ];
    writeFileSync(config, JSON.stringify(spec));
    const sb = ok(
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.sandboxBundle },
        f.options,
      ),
      f,
    );
    const recorded = [sb.state.vm!.qemu!];
    let deleted = false;
    t.teardown(async () => {
      if (!deleted) await deleteSandbox(sb);
    });
    ok(await addContainer(sb, { id: f.sandboxId, bundle: f.sandboxBundle }), f);
    ok(await startContainer(sb, f.sandboxId), f);
    const served = pumpOutput(
      sb,
      f.sandboxId,
      () => {},
      () => {},
    );
    ok(await addContainer(sb, { id: f.appId, bundle: f.appBundle }), f);
    ok(await startContainer(sb, f.appId), f);
    let out = '';
    let errText = '';
    const fetched = pumpOutput(
      sb,
      f.appId,
      (b) => (out += Buffer.from(b).toString()),
      (b) => (errText += Buffer.from(b).toString()),
    );
    t.is(ok(await wait(sb, f.appId), f), 0, errText);
    await fetched;
    t.is(out, 'from-sandbox', errText);
    t.is(ok(await wait(sb, f.sandboxId), f), 0);
    await served;
    for (const id of [f.appId, f.sandboxId]) ok(await removeContainer(sb, id), f);
    ok(await deleteSandbox(sb), f);
    deleted = true;
    t.deepEqual(tcResidue(net), []);
    t.deepEqual(leftovers(f, recorded), []);
  },
  { timeout: 300_000, needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')] },
);
