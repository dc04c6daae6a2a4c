//! Shared GPUs, per process (`--per-process`): which pod's processes use how much of a
//! time-sliced or MPS GPU. NVML names the processes on a GPU (their PIDs, GPU memory, SM
//! utilization samples); each PID's `/proc/<pid>/cgroup` on the host names its pod's UID and
//! container ID (the kubelet puts every container in a cgroup under `kubepods`); the node's
//! pods, watched from the API server, turn the UID into namespace and name.
//!
//! This needs the host's PID namespace (`hostPID: true`), so it is opt-in: the exporter then
//! sees every process on the node, though it reads nothing but the cgroup file of the PIDs NVML
//! reports. A PID in no pod's cgroup (a host process, a container outside Kubernetes) is left
//! unattributed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use nvml_wrapper::Device;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

/// One compute process on a GPU, as NVML and its cgroup describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessReading {
    pub pid: u32,
    /// Mean SM utilization of the process over the window, 0–1; absent without samples.
    pub sm_ratio: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// The pod (UID) and container its cgroup belongs to.
    pub container: Option<ContainerRef>,
}

/// A container as the kubelet names its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub pod_uid: String,
    pub container_id: Option<String>,
}

/// Reads a `/proc/<pid>/cgroup`: the pod UID and container ID of the first line under
/// `kubepods`, in any of the kubelet's layouts — cgroup v1 or v2, the `cgroupfs` driver
/// (`/kubepods/burstable/pod<uid>/<id>`) or `systemd`
/// (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope`),
/// containerd, CRI-O (`crio-<id>.scope`) or Docker (`docker-<id>.scope`).
pub fn container_of(cgroup: &str) -> Option<ContainerRef> {
    cgroup.lines().find_map(|line| {
        // hierarchy-ID:controllers:path
        let path = line.splitn(3, ':').nth(2)?;
        if !path.contains("kubepods") {
            return None;
        }
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let pod = segments.find_map(pod_uid)?;
        let container_id = segments.next_back().and_then(container_id);
        Some(ContainerRef {
            pod_uid: pod,
            container_id,
        })
    })
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let (_, uid) = segment.rsplit_once("pod")?;
    let uid = uid.replace('_', "-");
    let looks_like_uid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    looks_like_uid.then_some(uid)
}

/// A 64-hex container ID, bare (cgroupfs) or in a runtime's scope (`cri-containerd-<id>.scope`).
fn container_id(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = segment.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// What per-process sampling carries between collections.
pub struct ProcessSampler {
    /// The host's `/proc` (`--proc-root`; `/proc` with `hostPID`).
    proc_root: PathBuf,
    /// Per GPU UUID, the newest utilization sample seen: the next window starts there.
    last_seen: HashMap<String, u64>,
}

impl ProcessSampler {
    pub fn new(proc_root: PathBuf) -> ProcessSampler {
        ProcessSampler {
            proc_root,
            last_seen: HashMap::new(),
        }
    }

    /// The compute processes on `device` with their utilization since the last collection.
    /// NVML refusing (a MIG-mode GPU, an old driver) gives fewer facts, never an error.
    pub(crate) fn sample(&mut self, device: &Device<'_>, uuid: &str) -> Vec<ProcessReading> {
        let processes = match device.running_compute_processes() {
            Ok(processes) => processes,
            Err(error) => {
                tracing::debug!(%uuid, %error, "no process list");
                return Vec::new();
            }
        };
        let since = self.last_seen.get(uuid).copied();
        let samples = match device.process_utilization_stats(since) {
            Ok(samples) => samples,
            // no sample since `since`
            Err(NvmlError::NotFound) => Vec::new(),
            Err(error) => {
                tracing::debug!(%uuid, %error, "no process utilization");
                Vec::new()
            }
        };
        if let Some(newest) = samples.iter().map(|s| s.timestamp).max() {
            self.last_seen.insert(uuid.to_string(), newest);
        }
        let mut sm: BTreeMap<u32, (f64, u32)> = BTreeMap::new();
        for sample in &samples {
            let entry = sm.entry(sample.pid).or_default();
            entry.0 += f64::from(sample.sm_util.min(100));
            entry.1 += 1;
        }
        processes
            .into_iter()
            .map(|process| ProcessReading {
                pid: process.pid,
                sm_ratio: sm
                    .get(&process.pid)
                    .map(|(sum, count)| sum / f64::from(*count) / 100.0),
                memory_bytes: match process.used_gpu_memory {
                    UsedGpuMemory::Used(bytes) => Some(bytes),
                    UsedGpuMemory::Unavailable => None,
                },
                container: self.container(process.pid),
            })
            .collect()
    }

    fn container(&self, pid: u32) -> Option<ContainerRef> {
        let path = self.proc_root.join(pid.to_string()).join("cgroup");
        let text = std::fs::read_to_string(path).ok()?;
        container_of(&text)
    }
}

/// One pod's share of the shared GPUs its processes run on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodShare {
    /// Σ of its processes' SM utilization, per GPU, averaged over those GPUs (0–1).
    pub sm_ratio: Option<f64>,
    /// Σ of its processes' GPU memory.
    pub memory_bytes: u64,
}

/// Per (namespace, pod), the share of its processes on `gpus`, given the node's pods by UID.
pub fn pod_shares<'a>(
    gpus: impl IntoIterator<Item = &'a [ProcessReading]>,
    pods_by_uid: &HashMap<String, (String, String)>,
) -> BTreeMap<(String, String), PodShare> {
    // per pod: per GPU Σ SM, and memory
    let mut per_gpu: BTreeMap<(String, String), Vec<Option<f64>>> = BTreeMap::new();
    let mut shares: BTreeMap<(String, String), PodShare> = BTreeMap::new();
    for processes in gpus {
        let mut on_this_gpu: BTreeMap<(String, String), Option<f64>> = BTreeMap::new();
        for process in processes {
            let Some(pod) = process
                .container
                .as_ref()
                .and_then(|c| pods_by_uid.get(&c.pod_uid))
            else {
                continue;
            };
            let sm = on_this_gpu.entry(pod.clone()).or_default();
            if let Some(ratio) = process.sm_ratio {
                *sm = Some(sm.unwrap_or(0.0) + ratio);
            }
            shares.entry(pod.clone()).or_default().memory_bytes +=
                process.memory_bytes.unwrap_or(0);
        }
        for (pod, sm) in on_this_gpu {
            per_gpu.entry(pod).or_default().push(sm);
        }
    }
    for (pod, sms) in per_gpu {
        let known: Vec<f64> = sms.into_iter().flatten().collect();
        if !known.is_empty() {
            let mean = known.iter().sum::<f64>() / known.len() as f64;
            shares.entry(pod).or_default().sm_ratio = Some(mean.min(1.0));
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1f0a6a7e-3c2b-4d5e-8f90-a1b2c3d4e5f6";
    const ID: &str = "4c9e3b0d7a5f1e2c8b6a9d0f3e7c1b5a2d8f6e4c0b9a7d3f1e5c2b8a6d4f0e9c";

    #[test]
    fn every_kubelet_cgroup_layout_names_the_pod_and_container() {
        let systemd_uid = UID.replace('-', "_");
        for text in [
            // cgroup v2, systemd driver, containerd
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
            ),
            // cgroup v2, systemd, guaranteed QoS (no QoS slice), CRI-O
            format!("0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/crio-{ID}.scope\n"),
            // cgroup v1, cgroupfs driver: the first kubepods line names it
            format!(
                "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n11:memory:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/\n"
            ),
            // cgroup v1, systemd driver, Docker
            format!(
                "4:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_uid}.slice/docker-{ID}.scope\n"
            ),
        ] {
            assert_eq!(
                container_of(&text),
                Some(ContainerRef {
                    pod_uid: UID.into(),
                    container_id: Some(ID.into())
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn processes_outside_kubernetes_are_nobodys() {
        for text in [
            "0::/system.slice/nvidia-persistenced.service\n",
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/kubepods.slice\n",
            "",
            "garbage",
        ] {
            assert_eq!(container_of(text), None, "{text:?}");
        }
        // the pod's own cgroup (a process of the pause container's pod, no container scope)
        assert_eq!(
            container_of(&format!("0::/kubepods/pod{UID}\n")),
            Some(ContainerRef {
                pod_uid: UID.into(),
                container_id: None
            })
        );
    }

    #[test]
    fn shares_sum_per_pod_and_average_over_gpus() {
        let process = |pid, sm: Option<f64>, memory, uid: Option<&str>| ProcessReading {
            pid,
            sm_ratio: sm,
            memory_bytes: Some(memory),
            container: uid.map(|u| ContainerRef {
                pod_uid: u.into(),
                container_id: None,
            }),
        };
        let pods: HashMap<String, (String, String)> = [
            ("a".to_string(), ("ml".to_string(), "one".to_string())),
            ("b".to_string(), ("ml".to_string(), "two".to_string())),
        ]
        .into();
        let gpu0 = vec![
            process(10, Some(0.30), 100, Some("a")),
            process(11, Some(0.15), 50, Some("a")),
            process(20, Some(0.40), 300, Some("b")),
            process(99, Some(0.10), 999, None),
        ];
        let gpu1 = vec![process(21, Some(0.20), 200, Some("b"))];
        let shares = pod_shares([gpu0.as_slice(), gpu1.as_slice()], &pods);
        let one = &shares[&("ml".to_string(), "one".to_string())];
        assert!((one.sm_ratio.expect("sampled") - 0.45).abs() < 1e-12);
        assert_eq!(one.memory_bytes, 150);
        let two = &shares[&("ml".to_string(), "two".to_string())];
        assert!(
            (two.sm_ratio.expect("sampled") - 0.30).abs() < 1e-12,
            "mean of 40 % and 20 %"
        );
        assert_eq!(two.memory_bytes, 500);
        assert_eq!(shares.len(), 2, "the unattributed process is nobody's");
    }

    proptest::proptest! {
        /// Any cgroup file is read without a panic, and what it names is a UID and a 64-hex ID.
        #[test]
        fn any_cgroup_text_is_answered(text in "(\\PC|[/:\\-_]|kubepods|pod|\\.slice|\\.scope|\\n){0,80}") {
            if let Some(found) = container_of(&text) {
                proptest::prop_assert_eq!(found.pod_uid.len(), 36);
                if let Some(id) = found.container_id {
                    proptest::prop_assert_eq!(id.len(), 64);
                }
            }
        }
    }
}
