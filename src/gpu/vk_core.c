/* The Vulkan backend's plumbing: the loader opened at run time (so a machine
 * without Vulkan runs every CPU command), instances, devices, buffers, the
 * embedded shaders' pipelines, submission. */
#include <dlfcn.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "showdown.h"
#include "gpu/spv.h"
#include "gpu/vk.h"
#include "tensor/types.h"

static void *vk_lib;
static PFN_vkGetInstanceProcAddr vk_gipa;
static char vk_lib_err[256];
static pthread_once_t vk_once = PTHREAD_ONCE_INIT;

/* The loader stays open for the process: drivers keep threads and state. */
static void open_loader(void)
{
    vk_lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!vk_lib) {
        const char *e = dlerror();
        snprintf(vk_lib_err, sizeof vk_lib_err, "no Vulkan loader (%s)", e ? e : "libvulkan.so.1 not found");
        return;
    }
    vk_gipa = (PFN_vkGetInstanceProcAddr)dlsym(vk_lib, "vkGetInstanceProcAddr");
    if (!vk_gipa) snprintf(vk_lib_err, sizeof vk_lib_err, "libvulkan.so.1 has no vkGetInstanceProcAddr");
}

/* Test-only fault injection: SHOWDOWN_VK_FAIL=alloc:N makes the Nth device
 * memory allocation of the process fail as out of device memory,
 * SHOWDOWN_VK_FAIL=submit:N the Nth forward step's submission as a lost
 * device (1-based; uploads are not counted), SHOWDOWN_VK_FAIL=coop:N the
 * Nth cooperative-matrix self-check as a mismatch. The tests check that
 * each becomes one error line (the last: one notice), never a crash or
 * wrong output. */
static struct { int kind; long at; long seen[4]; } vk_fault;
static pthread_once_t vk_fault_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t vk_fault_mu = PTHREAD_MUTEX_INITIALIZER;

static void read_fault(void)
{
    const char *e = getenv("SHOWDOWN_VK_FAIL");
    long n;
    char kind[16];
    if (!e || sscanf(e, "%15[a-z]:%ld", kind, &n) != 2 || n < 1) return;
    vk_fault.kind = !strcmp(kind, "alloc") ? SD_VK_FAULT_ALLOC : !strcmp(kind, "submit") ? SD_VK_FAULT_SUBMIT
                  : !strcmp(kind, "coop") ? SD_VK_FAULT_COOP : 0;
    vk_fault.at = n;
}

int sd_vk_fault(int kind)
{
    pthread_once(&vk_fault_once, read_fault);
    if (!vk_fault.kind || kind != vk_fault.kind) return 0;
    pthread_mutex_lock(&vk_fault_mu);
    int hit = ++vk_fault.seen[kind] == vk_fault.at;
    pthread_mutex_unlock(&vk_fault_mu);
    return hit;
}

const char *sd_vk_result(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "success";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "no compatible Vulkan driver";
    case VK_ERROR_LAYER_NOT_PRESENT: return "layer not present";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    case VK_TIMEOUT: return "timeout";
    default: return "Vulkan error";
    }
}

int sd_vk_instance_new(sd_vk_instance *vk, char *err)
{
    memset(vk, 0, sizeof *vk);
    pthread_once(&vk_once, open_loader);
    if (!vk_gipa) { snprintf(err, SD_ERR_LEN, "vulkan: %s", vk_lib_err); return -1; }
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)vk_gipa(NULL, "vkCreateInstance");
    PFN_vkEnumerateInstanceVersion version =
        (PFN_vkEnumerateInstanceVersion)vk_gipa(NULL, "vkEnumerateInstanceVersion");
    uint32_t api = VK_API_VERSION_1_0;
    if (version && version(&api) != VK_SUCCESS) api = VK_API_VERSION_1_0;
    if (!create || api < VK_API_VERSION_1_1) {
        snprintf(err, SD_ERR_LEN, "vulkan: the loader is older than Vulkan 1.1");
        return -1;
    }
    /* 1.3 where the loader has it: the cooperative-matrix kernels are SPIR-V 1.6 */
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "showdown",
                             .apiVersion = api >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = create(&ci, NULL, &vk->inst);
    if (r != VK_SUCCESS) {
        snprintf(err, SD_ERR_LEN, "vulkan: cannot create an instance (%s)", sd_vk_result(r));
        vk->inst = VK_NULL_HANDLE;
        return -1;
    }
#define SD_VK_LOAD(f) vk->f = (PFN_##f)vk_gipa(vk->inst, #f);
    SD_VK_INSTANCE_FNS(SD_VK_LOAD)
    SD_VK_DEVICE_FNS(SD_VK_LOAD)
#undef SD_VK_LOAD
    vk->coop_props = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vk_gipa(
        vk->inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
#define SD_VK_CHECK(f) if (!vk->f) missing = #f;
    const char *missing = NULL;
    SD_VK_INSTANCE_FNS(SD_VK_CHECK)
    SD_VK_DEVICE_FNS(SD_VK_CHECK)
#undef SD_VK_CHECK
    if (missing) {
        snprintf(err, SD_ERR_LEN, "vulkan: the loader lacks %s", missing);
        sd_vk_instance_free(vk);
        return -1;
    }
    return 0;
}

void sd_vk_instance_free(sd_vk_instance *vk)
{
    if (vk->inst && vk->vkDestroyInstance) vk->vkDestroyInstance(vk->inst, NULL);
    vk->inst = VK_NULL_HANDLE;
}

int sd_vk_physical_devices(sd_vk_instance *vk, VkPhysicalDevice *devs, int max, int *n, char *err)
{
    uint32_t cnt = (uint32_t)max;
    VkResult r = vk->vkEnumeratePhysicalDevices(vk->inst, &cnt, devs);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        snprintf(err, SD_ERR_LEN, "vulkan: cannot list devices (%s)", sd_vk_result(r));
        return -1;
    }
    *n = (int)cnt;
    return 0;
}

int sd_vk_has_extension(sd_vk_instance *vk, VkPhysicalDevice pd, const char *name)
{
    VkExtensionProperties ext[512];
    uint32_t n = 512;
    VkResult r = vk->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return 0;
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(ext[i].extensionName, name)) return 1;
    return 0;
}

void sd_vk_describe(sd_vk_instance *vk, VkPhysicalDevice pd, sd_gpu_device_info *info)
{
    memset(info, 0, sizeof *info);
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
    vk->vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;
    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    if (drv.driverName[0]) snprintf(info->driver, sizeof info->driver, "%.100s: %.100s", drv.driverName, drv.driverInfo);
    else snprintf(info->driver, sizeof info->driver, "driver version %u", p->driverVersion);
    snprintf(info->api, sizeof info->api, "Vulkan %u.%u.%u", VK_API_VERSION_MAJOR(p->apiVersion),
             VK_API_VERSION_MINOR(p->apiVersion), VK_API_VERSION_PATCH(p->apiVersion));
    info->software = p->deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    int have_budget = sd_vk_has_extension(vk, pd, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    VkPhysicalDeviceMemoryProperties2 m2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                            .pNext = have_budget ? &budget : NULL};
    vk->vkGetPhysicalDeviceMemoryProperties2(pd, &m2);
    const VkPhysicalDeviceMemoryProperties *mp = &m2.memoryProperties;
    for (uint32_t h = 0; h < mp->memoryHeapCount; h++) {
        if (!(mp->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
        if (mp->memoryHeaps[h].size <= info->mem_total) continue;
        info->mem_total = mp->memoryHeaps[h].size;
        info->mem_free = info->mem_total;
        if (have_budget && budget.heapBudget[h])
            info->mem_free = budget.heapBudget[h] > budget.heapUsage[h] ? budget.heapBudget[h] - budget.heapUsage[h] : 0;
    }
}

/* Pipeline name of each index: the matvec formats, the ops, then the matmul
 * formats in the same order as the matvec ones. */
static const uint32_t mv_types[SD_VK_N_FORMATS] = {
    SD_TYPE_F32, SD_TYPE_F16, SD_TYPE_BF16, SD_TYPE_Q8_0, SD_TYPE_Q4_0, SD_TYPE_Q4_1, SD_TYPE_Q5_0, SD_TYPE_Q5_1,
    SD_TYPE_Q2_K, SD_TYPE_Q3_K, SD_TYPE_Q4_K, SD_TYPE_Q5_K, SD_TYPE_Q6_K, SD_TYPE_MXFP4, SD_TYPE_NVFP4,
    SD_TYPE_IQ4_NL};
static const char *const op_names[SD_VK_N_OPS] = {
    "rmsnorm", "rope", "kv_store", "attention", "swiglu", "add_bias", "quant_act", "geglu", "softcap",
    "moe_route", "moe_act", "moe_combine", "rope_paged", "kv_store_paged", "attention_paged"};

int sd_vk_matvec_index(uint32_t type)
{
    for (int i = 0; i < SD_VK_N_FORMATS; i++)
        if (mv_types[i] == type) return i;
    return -1;
}

static const sd_spv *find_spv(const char *name)
{
    for (const sd_spv *s = sd_spv_table; s->name; s++)
        if (!strcmp(s->name, name)) return s;
    return NULL;
}

static int make_layout(sd_vk_device *d, char *err)
{
    sd_vk_instance *vk = &d->vk;
    VkDescriptorSetLayoutBinding b[SD_VK_BINDINGS];
    for (uint32_t i = 0; i < SD_VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = SD_VK_BINDINGS, .pBindings = b};
    VkResult r = vk->vkCreateDescriptorSetLayout(d->dev, &dci, NULL, &d->dsl);
    VkPushConstantRange pc = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 64};
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &d->dsl, .pushConstantRangeCount = 1, .pPushConstantRanges = &pc};
    if (r == VK_SUCCESS) r = vk->vkCreatePipelineLayout(d->dev, &lci, NULL, &d->layout);
    if (r != VK_SUCCESS) {
        snprintf(err, SD_ERR_LEN, "vulkan: pipeline layout: %s", sd_vk_result(r));
        return -1;
    }
    return 0;
}

/* Pipelines are built on first use: a driver compiles each one (lavapipe
 * through LLVM), and a model needs the kernels of its own formats only. */
int sd_vk_pipeline(sd_vk_device *d, int i, char *err)
{
    sd_vk_instance *vk = &d->vk;
    if (d->pipes[i]) return 0;
    char name[32];
    if (i < SD_VK_N_FORMATS) snprintf(name, sizeof name, "matvec_%s", sd_type_name(mv_types[i]));
    else if (i >= SD_VK_MATVEC_ID_FIRST)
        snprintf(name, sizeof name, "matvec_id_%s", sd_type_name(mv_types[i - SD_VK_MATVEC_ID_FIRST]));
    else if (i >= SD_VK_COOP_FIRST)
        snprintf(name, sizeof name, "matmul_coop_%s", sd_type_name(mv_types[i - SD_VK_COOP_FIRST]));
    else if (i >= SD_VK_MATMUL_FIRST)
        snprintf(name, sizeof name, "matmul_%s", sd_type_name(mv_types[i - SD_VK_MATMUL_FIRST]));
    else snprintf(name, sizeof name, "%s", op_names[i - SD_VK_N_FORMATS]);
    const sd_spv *s = find_spv(name);
    if (!s) {
        snprintf(err, SD_ERR_LEN, "vulkan: shader %s is not in this build (was glslc missing?)", name);
        return -1;
    }
    VkShaderModuleCreateInfo sci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = s->bytes,
                                    .pCode = s->code};
    VkShaderModule mod;
    VkResult r = vk->vkCreateShaderModule(d->dev, &sci, NULL, &mod);
    if (r == VK_SUCCESS) {
        VkComputePipelineCreateInfo pci = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                      .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main"},
            .layout = d->layout};
        sd_vk_coop_spec spec;
        if (i >= SD_VK_COOP_FIRST && i < SD_VK_MATVEC_ID_FIRST) sd_vk_coop_stage(d, &pci.stage, &spec);
        VkPipeline p;
        r = vk->vkCreateComputePipelines(d->dev, VK_NULL_HANDLE, 1, &pci, NULL, &p);
        if (r == VK_SUCCESS) d->pipes[i] = p;
        vk->vkDestroyShaderModule(d->dev, mod, NULL);
    }
    if (r != VK_SUCCESS) {
        snprintf(err, SD_ERR_LEN, "vulkan: pipeline %s: %s", name, sd_vk_result(r));
        return -1;
    }
    return 0;
}

int sd_vk_device_open(int index, sd_vk_device *d, char *err)
{
    memset(d, 0, sizeof *d);
    if (sd_vk_instance_new(&d->vk, err)) return -1;
    sd_vk_instance *vk = &d->vk;
    VkPhysicalDevice devs[16];
    int n;
    if (sd_vk_physical_devices(vk, devs, 16, &n, err)) goto fail;
    if (index < 0 || index >= n) {
        snprintf(err, SD_ERR_LEN, "vulkan: no device %d (%d found; showdown devices lists them)", index, n);
        goto fail;
    }
    d->pd = devs[index];
    sd_vk_describe(vk, d->pd, &d->info);
    VkPhysicalDeviceProperties props;
    vk->vkGetPhysicalDeviceProperties(d->pd, &props);
    d->limits = props.limits;
    /* Test-only: SHOWDOWN_VK_MAX_BINDING=BYTES lowers the size weights are
     * split at, so small models take the paths of heads and expert tensors
     * too large to bind whole (tests/test_gpu_arch.c). */
    d->max_binding = d->limits.maxStorageBufferRange;
    const char *mb = getenv("SHOWDOWN_VK_MAX_BINDING");
    if (mb && atoll(mb) > 0 && (unsigned long long)atoll(mb) < d->max_binding) d->max_binding = (VkDeviceSize)atoll(mb);
    vk->vkGetPhysicalDeviceMemoryProperties(d->pd, &d->memprops);
    /* matvec.comp reduces with subgroupAdd: every Vulkan 1.1 GPU driver
     * (and lavapipe) has it in compute shaders, but it is optional. */
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vk->vkGetPhysicalDeviceProperties2(d->pd, &p2);
    VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    if (props.apiVersion < VK_API_VERSION_1_1 || !(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        (sg.supportedOperations & need) != need) {
        snprintf(err, SD_ERR_LEN, "vulkan: %s lacks Vulkan 1.1 subgroup arithmetic in compute shaders", d->info.name);
        goto fail;
    }
    VkQueueFamilyProperties qf[32];
    uint32_t nq = 32;
    vk->vkGetPhysicalDeviceQueueFamilyProperties(d->pd, &nq, qf);
    d->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < nq && d->queue_family == UINT32_MAX; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) d->queue_family = i;
    if (d->queue_family == UINT32_MAX) {
        snprintf(err, SD_ERR_LEN, "vulkan: %s has no compute queue", d->info.name);
        goto fail;
    }
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = d->queue_family, .queueCount = 1, .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    sd_vk_coop_features cf;
    const char *coop_ext = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
    if (sd_vk_coop_probe(d, &props, &cf)) {
        dci.pNext = &cf.v12;
        dci.enabledExtensionCount = 1;
        dci.ppEnabledExtensionNames = &coop_ext;
    }
    VkResult r = vk->vkCreateDevice(d->pd, &dci, NULL, &d->dev);
    if (r != VK_SUCCESS && d->coop.on) {   /* the path is optional: the device without it */
        memset(&d->coop, 0, sizeof d->coop);
        d->coop.off = "the device refused the features it needs";
        dci.pNext = NULL;
        dci.enabledExtensionCount = 0;
        r = vk->vkCreateDevice(d->pd, &dci, NULL, &d->dev);
    }
    if (r != VK_SUCCESS) {
        d->dev = VK_NULL_HANDLE;
        snprintf(err, SD_ERR_LEN, "vulkan: cannot open %s (%s)", d->info.name, sd_vk_result(r));
        goto fail;
    }
    vk->vkGetDeviceQueue(d->dev, d->queue_family, 0, &d->queue);
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = d->queue_family};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vk->vkCreateCommandPool(d->dev, &cpi, NULL, &d->cpool)) != VK_SUCCESS ||
        (r = vk->vkCreateFence(d->dev, &fci, NULL, &d->fence)) != VK_SUCCESS) {
        snprintf(err, SD_ERR_LEN, "vulkan: %s: %s", d->info.name, sd_vk_result(r));
        goto fail;
    }
    if (make_layout(d, err)) goto fail;
    return 0;
fail:
    sd_vk_device_close(d);
    return -1;
}

void sd_vk_device_close(sd_vk_device *d)
{
    sd_vk_instance *vk = &d->vk;
    if (d->dev) {
        vk->vkDeviceWaitIdle(d->dev);
        for (int i = 0; i < SD_VK_N_PIPES; i++)
            if (d->pipes[i]) vk->vkDestroyPipeline(d->dev, d->pipes[i], NULL);
        if (d->layout) vk->vkDestroyPipelineLayout(d->dev, d->layout, NULL);
        if (d->dsl) vk->vkDestroyDescriptorSetLayout(d->dev, d->dsl, NULL);
        if (d->fence) vk->vkDestroyFence(d->dev, d->fence, NULL);
        if (d->cpool) vk->vkDestroyCommandPool(d->dev, d->cpool, NULL);
        vk->vkDestroyDevice(d->dev, NULL);
    }
    sd_vk_instance_free(vk);
    memset(d, 0, sizeof *d);
}

static int memory_type(const sd_vk_device *d, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < d->memprops.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (d->memprops.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

int sd_vk_buffer_new(sd_vk_device *d, VkDeviceSize size, int host, sd_vk_buffer *b, char *err)
{
    sd_vk_instance *vk = &d->vk;
    memset(b, 0, sizeof *b);
    size = (size + 15) / 16 * 16;   /* shaders read whole words */
    if (size > d->limits.maxStorageBufferRange) {
        snprintf(err, SD_ERR_LEN, "vulkan: a buffer of %llu bytes exceeds %s's limit of %u per binding",
                 (unsigned long long)size, d->info.name, d->limits.maxStorageBufferRange);
        return -1;
    }
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                       VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                              .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vk->vkCreateBuffer(d->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        b->buf = VK_NULL_HANDLE;
        snprintf(err, SD_ERR_LEN, "vulkan: buffer of %llu bytes: %s", (unsigned long long)size, sd_vk_result(r));
        return -1;
    }
    VkMemoryRequirements req;
    vk->vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
    int mt = host ? memory_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                           VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                                                           VK_MEMORY_PROPERTY_HOST_CACHED_BIT)
                  : memory_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (mt < 0 && host)
        mt = memory_type(d, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (mt < 0) mt = memory_type(d, req.memoryTypeBits, 0);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)mt};
    VkDeviceMemory mem = VK_NULL_HANDLE;
    r = mt < 0 || (!host && sd_vk_fault(SD_VK_FAULT_ALLOC)) ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                                            : vk->vkAllocateMemory(d->dev, &ai, NULL, &mem);
    if (r == VK_SUCCESS) b->mem = mem;
    if (r == VK_SUCCESS) r = vk->vkBindBufferMemory(d->dev, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && host) r = vk->vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r != VK_SUCCESS) {
        sd_vk_buffer_free(d, b);
        snprintf(err, SD_ERR_LEN, "vulkan: %s memory of %llu bytes on %s: %s", host ? "host" : "device",
                 (unsigned long long)size, d->info.name, sd_vk_result(r));
        return -1;
    }
    b->size = size;
    return 0;
}

void sd_vk_buffer_free(sd_vk_device *d, sd_vk_buffer *b)
{
    if (b->map) d->vk.vkUnmapMemory(d->dev, b->mem);
    if (b->buf) d->vk.vkDestroyBuffer(d->dev, b->buf, NULL);
    if (b->mem) d->vk.vkFreeMemory(d->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

int sd_vk_submit_wait(sd_vk_device *d, VkCommandBuffer cb, int step, char *err)
{
    sd_vk_instance *vk = &d->vk;
    VkResult r = vk->vkEndCommandBuffer(cb);
    if (r == VK_SUCCESS && step && sd_vk_fault(SD_VK_FAULT_SUBMIT)) r = VK_ERROR_DEVICE_LOST;
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    if (r == VK_SUCCESS) r = vk->vkResetFences(d->dev, 1, &d->fence);
    if (r == VK_SUCCESS) r = vk->vkQueueSubmit(d->queue, 1, &si, d->fence);
    /* A hung GPU is reported lost by its driver's watchdog; the bound here
     * only keeps a wedged driver from hanging us forever. A software driver
     * on a busy CPU can take minutes per step of a larger model. */
    uint64_t limit_s = d->info.software ? 1800 : 300;
    if (r == VK_SUCCESS) r = vk->vkWaitForFences(d->dev, 1, &d->fence, VK_TRUE, limit_s * 1000000000ull);
    if (r != VK_SUCCESS) {
        d->lost = 1;
        snprintf(d->lost_why, sizeof d->lost_why, "%s", sd_vk_result(r));
        snprintf(err, SD_ERR_LEN, "vulkan: %s: %s", d->info.name, sd_vk_result(r));
        return -1;
    }
    return 0;
}

int sd_vk_upload(sd_vk_device *d, sd_vk_buffer *dst, const void *src, VkDeviceSize bytes, sd_vk_buffer *stage,
                 char *err)
{
    return sd_vk_upload_at(d, dst, 0, src, bytes, stage, err);
}

int sd_vk_upload_at(sd_vk_device *d, sd_vk_buffer *dst, VkDeviceSize dst_off, const void *src, VkDeviceSize bytes,
                    sd_vk_buffer *stage, char *err)
{
    sd_vk_instance *vk = &d->vk;
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cpool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkCommandBuffer cb;
    VkResult r = vk->vkAllocateCommandBuffers(d->dev, &ai, &cb);
    if (r != VK_SUCCESS) {
        snprintf(err, SD_ERR_LEN, "vulkan: command buffer: %s", sd_vk_result(r));
        return -1;
    }
    int rc = 0;
    for (VkDeviceSize at = 0; at < bytes && rc == 0; at += stage->size) {
        VkDeviceSize n = bytes - at < stage->size ? bytes - at : stage->size;
        memcpy(stage->map, (const char *)src + at, n);
        VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                       .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        vk->vkResetCommandBuffer(cb, 0);
        vk->vkBeginCommandBuffer(cb, &bi);
        VkBufferCopy c = {0, dst_off + at, n};
        vk->vkCmdCopyBuffer(cb, stage->buf, dst->buf, 1, &c);
        rc = sd_vk_submit_wait(d, cb, 0, err);
    }
    vk->vkFreeCommandBuffers(d->dev, d->cpool, 1, &cb);
    return rc;
}
