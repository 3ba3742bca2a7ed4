/* Internal to the Vulkan backend: the loader's entry points (libvulkan.so.1
 * opened with dlopen, everything else through vkGetInstanceProcAddr), an
 * instance, and a logical device with its compute queue and pipelines. */
#ifndef SD_GPU_VK_H
#define SD_GPU_VK_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "gpu/backend.h"

#define SD_VK_INSTANCE_FNS(X) \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties) \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceMemoryProperties2) \
    X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) \
    X(vkGetPhysicalDeviceFeatures2)

#define SD_VK_DEVICE_FNS(X) \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements) \
    X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory) \
    X(vkCreateShaderModule) X(vkDestroyShaderModule) X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) \
    X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout) X(vkCreateComputePipelines) X(vkDestroyPipeline) \
    X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) X(vkAllocateDescriptorSets) \
    X(vkUpdateDescriptorSets) X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers) \
    X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkResetCommandBuffer) X(vkCmdBindPipeline) \
    X(vkCmdBindDescriptorSets) X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) \
    X(vkQueueSubmit) X(vkCreateFence) X(vkDestroyFence) X(vkWaitForFences) X(vkResetFences) X(vkDeviceWaitIdle)

/* VK_KHR_cooperative_matrix, for headers older than 1.3.255 (Debian
 * bookworm's are 1.3.239). */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef enum { VK_COMPONENT_TYPE_FLOAT16_KHR = 0, VK_COMPONENT_TYPE_FLOAT32_KHR = 1 } VkComponentTypeKHR;
typedef enum { VK_SCOPE_SUBGROUP_KHR = 3 } VkScopeKHR;
typedef struct {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    VkComponentTypeKHR AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#endif

typedef struct {
    VkInstance inst;
#define SD_VK_DECL(f) PFN_##f f;
    SD_VK_INSTANCE_FNS(SD_VK_DECL)
    SD_VK_DEVICE_FNS(SD_VK_DECL)
#undef SD_VK_DECL
    /* Optional: only called when the device lists VK_KHR_cooperative_matrix
     * (an older loader hands out a trampoline that crashes otherwise). */
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR coop_props;
} sd_vk_instance;

/* Opens the loader (once per process) and creates an instance. Returns 0,
 * or -1 with the reason (no loader, no driver) in err. */
int sd_vk_instance_new(sd_vk_instance *vk, char *err);
void sd_vk_instance_free(sd_vk_instance *vk);
/* Physical devices: *n of them into devs (at most max). */
int sd_vk_physical_devices(sd_vk_instance *vk, VkPhysicalDevice *devs, int max, int *n, char *err);
void sd_vk_describe(sd_vk_instance *vk, VkPhysicalDevice pd, sd_gpu_device_info *info);
int sd_vk_has_extension(sd_vk_instance *vk, VkPhysicalDevice pd, const char *name);
const char *sd_vk_result(VkResult r);

/* A buffer with its own memory; map is set for host-visible ones. */
typedef struct {
    VkBuffer buf;
    VkDeviceMemory mem;
    VkDeviceSize size;
    void *map;
} sd_vk_buffer;

/* Pipelines: a matvec per format, the other ops, a tiled matmul per
 * format, a cooperative-matrix matmul per format, an expert-indexed matvec
 * per format (matvec_id.comp). */
enum { SD_VK_MATVEC_FIRST, SD_VK_N_FORMATS = 16,
       SD_VK_RMSNORM = SD_VK_N_FORMATS, SD_VK_ROPE, SD_VK_KV_STORE, SD_VK_ATTENTION, SD_VK_SWIGLU, SD_VK_ADD_BIAS,
       SD_VK_QUANT_ACT, SD_VK_GEGLU, SD_VK_SOFTCAP, SD_VK_MOE_ROUTE, SD_VK_MOE_ACT, SD_VK_MOE_COMBINE,
       SD_VK_ROPE_PAGED, SD_VK_KV_STORE_PAGED, SD_VK_ATTENTION_PAGED,   /* the serving engine's steps (vk_paged.h) */
       SD_VK_MATMUL_FIRST, SD_VK_N_OPS = SD_VK_MATMUL_FIRST - SD_VK_N_FORMATS,
       SD_VK_COOP_FIRST = SD_VK_MATMUL_FIRST + SD_VK_N_FORMATS,
       SD_VK_MATVEC_ID_FIRST = SD_VK_COOP_FIRST + SD_VK_N_FORMATS,
       SD_VK_N_PIPES = SD_VK_MATVEC_ID_FIRST + SD_VK_N_FORMATS };

/* Storage buffers a dispatch binds (the descriptor set layout's bindings). */
#define SD_VK_BINDINGS 6

/* The cooperative-matrix prefill product (matmul_coop.comp), when the device
 * has VK_KHR_cooperative_matrix with an F16 x F16 -> F32 subgroup-scope
 * configuration the kernel takes, Vulkan 1.3 (SPIR-V 1.6, a pinned subgroup
 * size) and this build has the kernels. */
typedef struct {
    int on;                        /* chosen at device creation (SHOWDOWN_VK_COOPMAT=0: never) */
    uint32_t m, n, k, sg;          /* the configuration, the pinned subgroup size */
    uint32_t bm, bn;               /* a workgroup's rows x tokens: 4m x 4n */
    signed char state[SD_VK_N_FORMATS];   /* per format: 0 unchecked, 1 checked, -1 disabled */
    char notice[192];              /* one line about this path ("" when there is nothing to say) */
    const char *off;               /* why the device does not take it (when !on after the probe) */
} sd_vk_coop;

typedef struct {
    sd_vk_instance vk;
    VkPhysicalDevice pd;
    sd_gpu_device_info info;
    VkPhysicalDeviceLimits limits;
    VkDeviceSize max_binding;   /* split weights larger than this (maxStorageBufferRange) */
    VkPhysicalDeviceMemoryProperties memprops;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipes[SD_VK_N_PIPES];
    VkCommandPool cpool;
    VkFence fence;
    sd_vk_coop coop;
    int lost;   /* a submit failed: the device is not used again */
    char lost_why[48];   /* how (sd_vk_result) */
} sd_vk_device;

int sd_vk_device_open(int index, sd_vk_device *d, char *err);
void sd_vk_device_close(sd_vk_device *d);
/* host: host-visible and coherent (mapped); otherwise device-local. */
int sd_vk_buffer_new(sd_vk_device *d, VkDeviceSize size, int host, sd_vk_buffer *b, char *err);
void sd_vk_buffer_free(sd_vk_device *d, sd_vk_buffer *b);
/* Copies bytes into a device buffer through a host staging buffer, in chunks. */
int sd_vk_upload(sd_vk_device *d, sd_vk_buffer *dst, const void *src, VkDeviceSize bytes, sd_vk_buffer *stage,
                 char *err);
/* The same, to bytes [dst_off, dst_off + bytes) of dst. */
int sd_vk_upload_at(sd_vk_device *d, sd_vk_buffer *dst, VkDeviceSize dst_off, const void *src, VkDeviceSize bytes,
                    sd_vk_buffer *stage, char *err);
/* Ends, submits and waits for cb; marks the device lost on failure.
 * step: a forward step's (counted by SHOWDOWN_VK_FAIL=submit:N). */
int sd_vk_submit_wait(sd_vk_device *d, VkCommandBuffer cb, int step, char *err);
/* Test-only fault injection (SHOWDOWN_VK_FAIL, vk_core.c): 1 when this
 * allocation or step submission is the one to fail. */
enum { SD_VK_FAULT_ALLOC = 1, SD_VK_FAULT_SUBMIT = 2, SD_VK_FAULT_COOP = 3 };
int sd_vk_fault(int kind);
/* y = w x for n_tok rows of x on device `device`, alone (the tests check
 * each format's kernel against the CPU's with it). */
int sd_vk_matvec_once(int device, const sd_weight *w, const float *x, int n_tok, float *y, char *err);
/* Builds pipeline i (SD_VK_*) if it is not yet. */
int sd_vk_pipeline(sd_vk_device *d, int i, char *err);
/* The matvec pipeline index of a weight format, -1 if there is none. */
int sd_vk_matvec_index(uint32_t type);

/* Recording a step (vk_model.c), for the parts recorded in other files
 * (vk_moe.c): a barrier between dependent dispatches; one dispatch of
 * pipeline pipe on nb buffers (NULL: a dummy); activations x (n_tok rows of
 * cols from float x_off) encoded as a weight format's dot product takes
 * them (the buffer to read them from then, at float 0: st->xq or x itself);
 * y = w x as the layers' products do. */
typedef struct sd_vk_rec sd_vk_rec;
void sd_vk_rec_barrier(sd_vk_rec *R);
void sd_vk_rec_dispatch(sd_vk_rec *R, int pipe, sd_vk_buffer *const *bs, int nb, const void *pc, uint32_t pc_bytes,
                        uint32_t gx, uint32_t gy);
sd_vk_buffer *sd_vk_rec_encode(sd_vk_rec *R, uint32_t type, sd_vk_buffer *x, uint32_t x_off, int cols, int n_tok);
void sd_vk_rec_matvec(sd_vk_rec *R, const sd_weight *m, sd_vk_buffer *w, sd_vk_buffer *x, sd_vk_buffer *y, int n_tok);
/* Workgroups for `groups` of work: 65535 wide rows of a 2-D grid. */
void sd_vk_grid(uint64_t groups, uint32_t *gx, uint32_t *gy);

/* Which kernel a batch of more than 16 tokens takes (sd_vk_product_once). */
enum { SD_VK_PATH_AUTO, SD_VK_PATH_PLAIN, SD_VK_PATH_COOP };
/* y = w x as sd_vk_matvec_once, on the given path: PLAIN the tiled
 * matmul.comp, COOP the cooperative-matrix kernel (an error when the device
 * or build has none, or its self-check disabled it), AUTO what a model's
 * forward pass takes. */
int sd_vk_product_once(int device, const sd_weight *w, const float *x, int n_tok, int path, float *y, char *err);
/* vk_coop.c: picks the configuration at device creation (fills d->coop and
 * f, the features to enable, chained from f->v12); 0 when the path is off. */
typedef struct {
    VkPhysicalDeviceVulkan12Features v12;
    VkPhysicalDeviceVulkan13Features v13;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR cm;
} sd_vk_coop_features;
int sd_vk_coop_probe(sd_vk_device *d, const VkPhysicalDeviceProperties *props, sd_vk_coop_features *f);
/* A coop kernel's pipeline stage: its configuration as specialization
 * constants and the pinned subgroup size (s holds what stage points to). */
typedef struct {
    VkSpecializationMapEntry map[4];
    uint32_t val[4];
    VkSpecializationInfo info;
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo sg;
} sd_vk_coop_spec;
void sd_vk_coop_stage(const sd_vk_device *d, VkPipelineShaderStageCreateInfo *stage, sd_vk_coop_spec *s);
/* The self-check on a format's first use: the coop kernel against the
 * tiled one on the first rows of weight w (on the device) and random
 * activations; a mismatch turns the path off for the device with a notice.
 * -1 with err only when the check itself could not run. */
int sd_vk_coop_check(sd_vk_device *d, const sd_weight *meta, sd_vk_buffer *w, char *err);
/* Device `device`'s choice (opened and closed for it), for the tests. */
int sd_vk_coop_info(int device, sd_vk_coop *out, char *err);

#endif
