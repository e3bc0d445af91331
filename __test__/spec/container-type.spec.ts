import test from 'ava';
import {
  containerType,
  imageReference,
  type ContainerTypeInfo,
} from '../../ts/spec/container-type.js';

const CRIO_TYPE = 'io.kubernetes.cri-o.ContainerType';
const CRIO_SID = 'io.kubernetes.cri-o.SandboxID';
const CRIO_IMAGE = 'io.kubernetes.cri-o.ImageName';
const CRI_TYPE = 'io.kubernetes.cri.container-type';
const CRI_SID = 'io.kubernetes.cri.sandbox-id';
const CRI_IMAGE = 'io.kubernetes.cri.image-name';
const DOCKER_TYPE = 'io.kubernetes.docker.type';
const DOCKER_SID = 'io.kubernetes.sandbox.id';

// vectors.md §4.7 (kata-types k8s.rs::test_container_type) and the derived priority rows.
const typeRows: {
  title: string;
  annotations: Record<string, string>;
  expected: ContainerTypeInfo;
}[] = [
  {
    title: 'no annotations: single container',
    annotations: {},
    expected: { type: 'single_container', sandboxId: null },
  },
  {
    title: 'CRI-O sandbox',
    annotations: { [CRIO_TYPE]: 'sandbox' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'CRI-O pod_sandbox',
    annotations: { [CRIO_TYPE]: 'pod_sandbox' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'CRI-O podsandbox',
    annotations: { [CRIO_TYPE]: 'podsandbox' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'CRI-O container with its sandbox id',
    annotations: { [CRIO_TYPE]: 'container', [CRIO_SID]: 'sid' },
    expected: { type: 'pod_container', sandboxId: 'sid' },
  },
  {
    title: 'containerd pod_container with its sandbox id',
    annotations: { [CRI_TYPE]: 'pod_container', [CRI_SID]: 'sid' },
    expected: { type: 'pod_container', sandboxId: 'sid' },
  },
  {
    title: 'containerd sandbox',
    annotations: { [CRI_TYPE]: 'sandbox', [CRI_SID]: 'sid' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'dockershim container with its sandbox id',
    annotations: { [DOCKER_TYPE]: 'container', [DOCKER_SID]: 'sid' },
    expected: { type: 'pod_container', sandboxId: 'sid' },
  },
  {
    title: 'dockershim podsandbox',
    annotations: { [DOCKER_TYPE]: 'podsandbox' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'pod container without a sandbox id',
    annotations: { [CRI_TYPE]: 'container' },
    expected: { type: 'pod_container', sandboxId: null },
  },
  {
    title: 'CRI-O type wins over containerd',
    annotations: { [CRIO_TYPE]: 'sandbox', [CRI_TYPE]: 'container', [CRI_SID]: 'x' },
    expected: { type: 'pod_sandbox', sandboxId: null },
  },
  {
    title: 'an unparsable CRI-O type falls through to containerd',
    annotations: { [CRIO_TYPE]: 'bogus', [CRI_TYPE]: 'container', [CRI_SID]: 'c' },
    expected: { type: 'pod_container', sandboxId: 'c' },
  },
  {
    title: 'the sandbox id comes from the CRI-O key first',
    annotations: { [CRI_TYPE]: 'container', [CRI_SID]: 'c', [CRIO_SID]: 'o' },
    expected: { type: 'pod_container', sandboxId: 'o' },
  },
  {
    title: 'only unparsable types: single container',
    annotations: { [CRI_TYPE]: 'bogus' },
    expected: { type: 'single_container', sandboxId: null },
  },
];
for (const row of typeRows) {
  test(`container type: ${row.title}`, (t) => {
    t.deepEqual(containerType(row.annotations), row.expected);
  });
}

test('container type ignores inherited object keys', (t) => {
  t.deepEqual(containerType(Object.create({ [CRI_TYPE]: 'sandbox' }) as Record<string, string>), {
    type: 'single_container',
    sandboxId: null,
  });
});

// vectors.md §4.3 (runtime-rs virtual_volume.rs::test_get_image_ref and derived rows)
const imageRows: {
  title: string;
  annotations: Record<string, string>;
  image?: string;
  error?: string;
}[] = [
  {
    title: 'containerd container: CRI image name',
    annotations: { [CRI_TYPE]: 'container', [CRI_IMAGE]: 'example-image-x' },
    image: 'example-image-x',
  },
  {
    title: 'CRI-O container: CRI-O image name',
    annotations: { [CRIO_TYPE]: 'container', [CRIO_IMAGE]: 'example-image-y' },
    image: 'example-image-y',
  },
  { title: 'sandbox: pause', annotations: { [CRI_TYPE]: 'sandbox' }, image: 'pause' },
  {
    title: 'fallback to the CRI image name',
    annotations: { [CRI_IMAGE]: 'example-image-single' },
    image: 'example-image-single',
  },
  {
    title: 'fallback to the CRI-O image name',
    annotations: { [CRIO_IMAGE]: 'example-image-single-crio' },
    image: 'example-image-single-crio',
  },
  {
    title: 'container without an image name',
    annotations: { [CRI_TYPE]: 'container' },
    error: 'get image reference failed',
  },
  {
    title: 'unparsable type: key skipped, fallback',
    annotations: { [CRI_TYPE]: 'bogus', [CRI_IMAGE]: 'x' },
    image: 'x',
  },
  {
    title: 'CRI type selects the CRI image key',
    annotations: { [CRI_TYPE]: 'container', [CRIO_IMAGE]: 'y' },
    error: 'get image reference failed',
  },
  { title: 'nothing: no target', annotations: {}, error: 'no target image reference found' },
];
for (const row of imageRows) {
  test(`image reference: ${row.title}`, (t) => {
    const r = imageReference(row.annotations);
    if (row.error === undefined) {
      t.is(r._unsafeUnwrap(), row.image ?? '');
    } else {
      const e = r._unsafeUnwrapErr();
      t.is(e.kind, 'annotation');
      t.true(e.message.includes(row.error), e.message);
    }
  });
}
