/*
 * A simulated libnvidia-ml.so.1 for kubemind's tests and demo: the NVML C ABI subset the
 * exporter calls through nvml-wrapper, with GPUs scripted from a file, so the real
 * nvml-wrapper code path runs on machines without a GPU.
 *
 * The file named by $KUBEMIND_NVML_SIM, or else `nvml-sim.conf` beside this library, is re-read
 * on every nvmlDeviceGetCount_v2 call, so a test can change values between samples. When the
 * file is missing, nvmlInit fails with NVML_ERROR_DRIVER_NOT_LOADED (as on a node without a
 * driver). Lines:
 *
 *   gpu <uuid> <util%> <memory used bytes> <memory total bytes> <power mW> <temperature C> [mig]
 *   mig <MIG uuid> <memory used bytes> <memory total bytes> [GPU instance id]
 *                                           (an instance of the last gpu; id default slot + 1)
 *   gpm <SM active%> <SM occupancy%> <tensor active%> <DRAM bandwidth%>
 *                                           (GPM activity of the last gpu or mig line)
 *   proc <pid> <SM%> <GPU memory bytes>     (a compute process on the last gpu)
 *   # comments and blank lines are ignored
 *
 * A `mig` GPU answers utilization with NVML_ERROR_NOT_SUPPORTED, as real MIG-mode GPUs do.
 * GPM (nvmlGpm*): a GPU with a `gpm` line supports it, one without does not (as before Hopper);
 * a MIG instance supports it when its GPU does. Each nvmlGpmSampleGet / nvmlGpmMigSampleGet
 * advances the device's cumulative counters by 1000 cycles at its scripted activity, and
 * nvmlGpmMetricsGet returns Δactivity / Δcycles between two samples: the scripted percentages,
 * exactly, while the script holds them.
 * Processes: nvmlDeviceGetComputeRunningProcesses_v3 lists a gpu's `proc` lines with their
 * memory; nvmlDeviceGetProcessUtilization gives one sample per process, stamped now, when now
 * is past the caller's last-seen timestamp.
 * Build: cc -shared -fPIC -o libnvidia-ml.so.1 nvml_sim.c
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
};

#define MAX_GPUS 64
#define MAX_MIG 7
#define MAX_PROCS 16

typedef struct process {
    unsigned int pid, sm;
    unsigned long long memory;
} process;

typedef struct activity {
    double sm_active, sm_occupancy, tensor_active, dram_bandwidth;
} activity;

typedef struct device {
    char uuid[96];
    unsigned int index;
    unsigned int gpu_instance_id;
    int gpm;             /* a `gpm` line was given for this device */
    activity gpm_percent;
    unsigned int process_count;
    process processes[MAX_PROCS];
    unsigned int utilization;
    unsigned long long memory_used, memory_total;
    unsigned int power_mw, temperature;
    int mig_mode;
    int is_mig;
    unsigned int mig_count;
    struct device *mig[MAX_MIG];
} device;

typedef device *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

/* GPM counters outlive script reloads: cumulative, per device UUID. */
typedef struct counters {
    char uuid[96];
    double cycles;
    activity active;
} counters;

typedef struct nvmlGpmSample_st {
    int taken;
    counters at;
} *nvmlGpmSample_t;

static counters gpm_counters[MAX_GPUS * (MAX_MIG + 1)];
static unsigned int gpm_counter_count;

static device gpus[MAX_GPUS];
static device migs[MAX_GPUS * MAX_MIG];
static unsigned int gpu_count;
static int initialized;

/* The script's path: $KUBEMIND_NVML_SIM, or nvml-sim.conf in this library's directory. */
static const char *script_path(char *buffer, size_t size) {
    const char *path = getenv("KUBEMIND_NVML_SIM");
    if (path) return path;
    Dl_info info;
    if (!dladdr((void *)&script_path, &info) || !info.dli_fname) return NULL;
    const char *slash = strrchr(info.dli_fname, '/');
    size_t directory = slash ? (size_t)(slash - info.dli_fname + 1) : 0;
    if (directory + sizeof "nvml-sim.conf" > size) return NULL;
    memcpy(buffer, info.dli_fname, directory);
    strcpy(buffer + directory, "nvml-sim.conf");
    return buffer;
}

/* Loads the scripted GPUs; returns 0 when the file cannot be read. */
static int load(void) {
    char buffer[PATH_MAX];
    const char *path = script_path(buffer, sizeof buffer);
    if (!path) return 0;
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    unsigned int count = 0, mig_total = 0;
    device *last = NULL;
    char line[512];
    while (fgets(line, sizeof line, file)) {
        char uuid[96], flag[16] = "";
        device *d;
        if (strncmp(line, "proc ", 5) == 0 && count > 0) {
            device *gpu = &gpus[count - 1];
            process p;
            if (gpu->process_count < MAX_PROCS &&
                sscanf(line + 5, "%u %u %llu", &p.pid, &p.sm, &p.memory) == 3)
                gpu->processes[gpu->process_count++] = p;
            continue;
        }
        if (strncmp(line, "gpm ", 4) == 0 && last) {
            activity a;
            if (sscanf(line + 4, "%lf %lf %lf %lf", &a.sm_active, &a.sm_occupancy,
                       &a.tensor_active, &a.dram_bandwidth) == 4) {
                last->gpm = 1;
                last->gpm_percent = a;
            }
            continue;
        }
        if (strncmp(line, "gpu ", 4) == 0 && count < MAX_GPUS) {
            d = &gpus[count];
            memset(d, 0, sizeof *d);
            if (sscanf(line + 4, "%95s %u %llu %llu %u %u %15s", uuid, &d->utilization,
                       &d->memory_used, &d->memory_total, &d->power_mw, &d->temperature,
                       flag) < 6)
                continue;
            strcpy(d->uuid, uuid);
            d->index = count;
            d->mig_mode = strcmp(flag, "mig") == 0;
            count++;
            last = d;
        } else if (strncmp(line, "mig ", 4) == 0 && count > 0 && mig_total < MAX_GPUS * MAX_MIG) {
            device *parent = &gpus[count - 1];
            if (parent->mig_count >= MAX_MIG) continue;
            d = &migs[mig_total];
            memset(d, 0, sizeof *d);
            unsigned int gi = 0;
            int fields = sscanf(line + 4, "%95s %llu %llu %u", uuid, &d->memory_used,
                                &d->memory_total, &gi);
            if (fields < 3)
                continue;
            strcpy(d->uuid, uuid);
            d->is_mig = 1;
            d->index = parent->mig_count;
            d->gpu_instance_id = fields == 4 ? gi : parent->mig_count + 1;
            parent->mig[parent->mig_count++] = d;
            mig_total++;
            last = d;
        }
    }
    fclose(file);
    gpu_count = count;
    return 1;
}

nvmlReturn_t nvmlInit_v2(void) {
    if (!load()) return NVML_ERROR_DRIVER_NOT_LOADED;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    if (length < 16) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, "555.42.sim");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (!load()) return NVML_ERROR_DRIVER_NOT_LOADED;
    *count = gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(device->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(device->is_mig ? "NVIDIA H100 80GB HBM3 MIG 1g.10gb" : "NVIDIA H100 80GB HBM3",
                       name, length);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    if (!device || !index) return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    if (!device || !utilization) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->mig_mode || device->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    utilization->gpu = device->utilization;
    utilization->memory = device->utilization / 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    if (!device || !memory) return NVML_ERROR_INVALID_ARGUMENT;
    if ((memory->version >> 24) != 2) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->memory_total;
    memory->used = device->memory_used;
    memory->reserved = 0;
    memory->free = device->memory_total > device->memory_used ? device->memory_total - device->memory_used : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    if (!device || !power) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *power = device->power_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temperature) {
    if (!device || !temperature || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *temperature = device->temperature;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    if (!device || !current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = *pending = (unsigned int)device->mig_mode;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count) {
    if (!device || !count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = device->mig_mode ? MAX_MIG : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index,
                                                 nvmlDevice_t *mig) {
    if (!device || !mig || !device->mig_mode) return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= device->mig_count) return NVML_ERROR_NOT_FOUND;
    *mig = device->mig[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id) {
    if (!device || !id) return NVML_ERROR_INVALID_ARGUMENT;
    if (!device->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *id = device->gpu_instance_id;
    return NVML_SUCCESS;
}

/* ---- GPM ---- */

typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;

typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct { char *shortName, *longName, *unit; } metricInfo;
} nvmlGpmMetric_t;

#define NVML_GPM_METRIC_MAX 210
typedef struct {
    unsigned int version;
    unsigned int numMetrics;
    nvmlGpmSample_t sample1, sample2;
    nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;

enum {
    NVML_GPM_METRIC_SM_UTIL = 2,
    NVML_GPM_METRIC_SM_OCCUPANCY = 3,
    NVML_GPM_METRIC_ANY_TENSOR_UTIL = 5,
    NVML_GPM_METRIC_DRAM_BW_UTIL = 10,
};

/* The parent GPU of a MIG instance. */
static device *parent_of(device *mig) {
    for (unsigned int g = 0; g < gpu_count; g++)
        for (unsigned int m = 0; m < gpus[g].mig_count; m++)
            if (gpus[g].mig[m] == mig) return &gpus[g];
    return NULL;
}

static int gpm_supported(device *d) {
    if (d->is_mig) {
        device *parent = parent_of(d);
        return parent && parent->gpm;
    }
    return d->gpm;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *support) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || !support || support->version != 1) return NVML_ERROR_INVALID_ARGUMENT;
    support->isSupportedDevice = (unsigned int)gpm_supported(device);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *sample) {
    if (!sample) return NVML_ERROR_INVALID_ARGUMENT;
    *sample = calloc(1, sizeof **sample);
    return *sample ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample) {
    free(sample);
    return NVML_SUCCESS;
}

/* Advances `d`'s counters by one sample's worth at its scripted activity, into `sample`. */
static nvmlReturn_t take(device *d, nvmlGpmSample_t sample) {
    if (!gpm_supported(d)) return NVML_ERROR_NOT_SUPPORTED;
    counters *c = NULL;
    for (unsigned int i = 0; i < gpm_counter_count; i++)
        if (strcmp(gpm_counters[i].uuid, d->uuid) == 0) c = &gpm_counters[i];
    if (!c) {
        if (gpm_counter_count == sizeof gpm_counters / sizeof *gpm_counters)
            return NVML_ERROR_INSUFFICIENT_SIZE;
        c = &gpm_counters[gpm_counter_count++];
        memset(c, 0, sizeof *c);
        strcpy(c->uuid, d->uuid);
    }
    c->cycles += 1000;
    c->active.sm_active += d->gpm_percent.sm_active * 10;
    c->active.sm_occupancy += d->gpm_percent.sm_occupancy * 10;
    c->active.tensor_active += d->gpm_percent.tensor_active * 10;
    c->active.dram_bandwidth += d->gpm_percent.dram_bandwidth * 10;
    sample->taken = 1;
    sample->at = *c;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t sample) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || !sample || device->is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    return take(device, sample);
}

nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId,
                                 nvmlGpmSample_t sample) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || !sample || !device->mig_mode) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int m = 0; m < device->mig_count; m++)
        if (device->mig[m]->gpu_instance_id == gpuInstanceId) return take(device->mig[m], sample);
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *request) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!request || request->version != 1 || request->numMetrics > NVML_GPM_METRIC_MAX ||
        !request->sample1 || !request->sample2 || !request->sample1->taken ||
        !request->sample2->taken ||
        strcmp(request->sample1->at.uuid, request->sample2->at.uuid) != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    const counters *a = &request->sample1->at, *b = &request->sample2->at;
    double cycles = b->cycles - a->cycles;
    for (unsigned int i = 0; i < request->numMetrics; i++) {
        nvmlGpmMetric_t *metric = &request->metrics[i];
        double active;
        switch (metric->metricId) {
        case NVML_GPM_METRIC_SM_UTIL: active = b->active.sm_active - a->active.sm_active; break;
        case NVML_GPM_METRIC_SM_OCCUPANCY: active = b->active.sm_occupancy - a->active.sm_occupancy; break;
        case NVML_GPM_METRIC_ANY_TENSOR_UTIL: active = b->active.tensor_active - a->active.tensor_active; break;
        case NVML_GPM_METRIC_DRAM_BW_UTIL: active = b->active.dram_bandwidth - a->active.dram_bandwidth; break;
        default:
            metric->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        if (cycles <= 0) {
            metric->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
            continue;
        }
        metric->nvmlReturn = NVML_SUCCESS;
        metric->value = active / cycles * 100.0;
        metric->metricInfo.shortName = metric->metricInfo.longName = NULL;
        metric->metricInfo.unit = NULL;
    }
    return NVML_SUCCESS;
}

/* ---- processes ---- */

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || !count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int have = device->process_count;
    if (!infos || *count < have) {
        *count = have;
        return have == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < have; i++) {
        infos[i].pid = device->processes[i].pid;
        infos[i].usedGpuMemory = device->processes[i].memory;
        infos[i].gpuInstanceId = infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *count = have;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device,
                                             nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count,
                                             unsigned long long lastSeenTimeStamp) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!device || !count) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->mig_mode || device->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    struct timeval now;
    gettimeofday(&now, NULL);
    unsigned long long stamp = (unsigned long long)now.tv_sec * 1000000ULL + now.tv_usec;
    unsigned int have = stamp > lastSeenTimeStamp ? device->process_count : 0;
    if (have == 0) {
        *count = 0;
        return NVML_ERROR_NOT_FOUND; /* no samples since lastSeenTimeStamp, as NVML answers */
    }
    if (!samples || *count < have) {
        *count = have;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < have; i++) {
        samples[i].pid = device->processes[i].pid;
        samples[i].timeStamp = stamp;
        samples[i].smUtil = device->processes[i].sm;
        samples[i].memUtil = samples[i].encUtil = samples[i].decUtil = 0;
    }
    *count = have;
    return NVML_SUCCESS;
}
