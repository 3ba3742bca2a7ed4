/* The cooperative-matrix prefill product (matmul_coop.comp): whether a
 * device takes it and in which configuration (chosen when the device is
 * opened), the pipeline's specialization, and the self-check that compares
 * it with the plain tiled kernel the first time a weight format uses it (a
 * driver nobody here has tested runs this path; a wrong answer there turns
 * it off for the device instead of corrupting every prefill). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "gpu/spv.h"
#include "gpu/vk.h"
#include "tensor/types.h"

/* What matmul_coop.comp takes: tiles of at most 16 x 16 (a workgroup is 4 x
 * 4 of them) and a K step dividing its 32-column step. */
static int config_fits(const VkCooperativeMatrixPropertiesKHR *p)
{
    return p->AType == VK_COMPONENT_TYPE_FLOAT16_KHR && p->BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
           p->CType == VK_COMPONENT_TYPE_FLOAT32_KHR && p->ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
           p->scope == VK_SCOPE_SUBGROUP_KHR && !p->saturatingAccumulation && (p->MSize == 8 || p->MSize == 16) &&
           (p->NSize == 8 || p->NSize == 16) && (p->KSize == 8 || p->KSize == 16 || p->KSize == 32);
}

/* matmul_coop.comp's shared memory for a configuration (Q4_1/Q5_1's extra
 * K slice included): F16 weight and activation tiles, F32 results. */
static uint32_t shared_bytes(uint32_t m, uint32_t n, uint32_t k)
{
    uint32_t bm = 4 * m, bn = 4 * n, ws = 32 + k + 8;
    return 2 * (bm + bn) * ws + 4 * bn * (bm + 4);
}

static int have_kernels(void)
{
    for (const sd_spv *s = sd_spv_table; s->name; s++)
        if (!strncmp(s->name, "matmul_coop_", 12)) return 1;
    return 0;
}

int sd_vk_coop_probe(sd_vk_device *d, const VkPhysicalDeviceProperties *props, sd_vk_coop_features *f)
{
    sd_vk_instance *vk = &d->vk;
    sd_vk_coop *c = &d->coop;
    memset(c, 0, sizeof *c);
    memset(f, 0, sizeof *f);
    const char *env = getenv("SHOWDOWN_VK_COOPMAT");
    c->off = env && !strcmp(env, "0") ? "SHOWDOWN_VK_COOPMAT=0"
           : !have_kernels() ? "this build has no cooperative-matrix kernels (glslang 13+ was missing when it was built)"
           : props->apiVersion < VK_API_VERSION_1_3 ? "the device is older than Vulkan 1.3"
           : !vk->coop_props || !sd_vk_has_extension(vk, d->pd, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME)
               ? "the device lacks VK_KHR_cooperative_matrix" : NULL;
    if (c->off) return 0;
    c->off = "the device has no F16 x F16 -> F32 subgroup configuration of at most 16x16 that fits, or lacks a "
             "feature it needs (shaderFloat16, vulkanMemoryModel, subgroup size control)";
    f->cm.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR;
    f->v13 = (VkPhysicalDeviceVulkan13Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
                                                .pNext = &f->cm};
    f->v12 = (VkPhysicalDeviceVulkan12Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                                .pNext = &f->v13};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f->v12};
    vk->vkGetPhysicalDeviceFeatures2(d->pd, &f2);
    int have = f->cm.cooperativeMatrix && f->v12.shaderFloat16 && f->v12.vulkanMemoryModel &&
               f->v13.subgroupSizeControl && f->v13.computeFullSubgroups;
    /* The kernel's 4 subgroups share the tile: the size is pinned (the
     * device's default) so that a workgroup is exactly 4 of them. */
    VkPhysicalDeviceSubgroupSizeControlProperties sc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                             .pNext = &sc};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vk->vkGetPhysicalDeviceProperties2(d->pd, &p2);
    uint32_t s = sg.subgroupSize;
    const VkPhysicalDeviceLimits *lim = &props->limits;
    have = have && s >= sc.minSubgroupSize && s <= sc.maxSubgroupSize && sc.maxComputeWorkgroupSubgroups >= 4 &&
           (sc.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) && 4 * s <= lim->maxComputeWorkGroupInvocations &&
           4 * s <= lim->maxComputeWorkGroupSize[0];
    VkCooperativeMatrixPropertiesKHR cp[64];
    uint32_t n = 64;
    for (uint32_t i = 0; i < n; i++)
        cp[i] = (VkCooperativeMatrixPropertiesKHR){.sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR};
    VkResult r = have ? vk->coop_props(d->pd, &n, cp) : VK_ERROR_FEATURE_NOT_PRESENT;
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return 0;
    /* The largest tile, then the longest K step, that fits shared memory. */
    uint32_t best = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t score = cp[i].MSize * cp[i].NSize * 64 + cp[i].KSize;
        if (!config_fits(&cp[i]) || score <= best ||
            shared_bytes(cp[i].MSize, cp[i].NSize, cp[i].KSize) > lim->maxComputeSharedMemorySize)
            continue;
        best = score;
        c->m = cp[i].MSize; c->n = cp[i].NSize; c->k = cp[i].KSize;
    }
    if (!best) return 0;
    c->on = 1;
    c->off = NULL;
    c->sg = s;
    c->bm = 4 * c->m;
    c->bn = 4 * c->n;
    snprintf(c->notice, sizeof c->notice, "prefill on cooperative matrices (%ux%ux%u F16, subgroup %u)", c->m, c->n,
             c->k, c->sg);
    /* What the device is created with: nothing else is enabled. */
    memset(f, 0, sizeof *f);
    f->cm = (VkPhysicalDeviceCooperativeMatrixFeaturesKHR){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    f->v13 = (VkPhysicalDeviceVulkan13Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
                                                .pNext = &f->cm, .subgroupSizeControl = VK_TRUE,
                                                .computeFullSubgroups = VK_TRUE};
    f->v12 = (VkPhysicalDeviceVulkan12Features){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                                .pNext = &f->v13, .shaderFloat16 = VK_TRUE,
                                                .vulkanMemoryModel = VK_TRUE};
    return 1;
}

void sd_vk_coop_stage(const sd_vk_device *d, VkPipelineShaderStageCreateInfo *stage, sd_vk_coop_spec *s)
{
    const sd_vk_coop *c = &d->coop;
    uint32_t v[4] = {4 * c->sg, c->m, c->n, c->k};   /* matmul_coop.comp's constant_id 0-3 */
    for (uint32_t i = 0; i < 4; i++) {
        s->map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
        s->val[i] = v[i];
    }
    s->info = (VkSpecializationInfo){4, s->map, sizeof s->val, s->val};
    s->sg = (VkPipelineShaderStageRequiredSubgroupSizeCreateInfo){
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = c->sg};
    stage->pNext = &s->sg;
    stage->flags = VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    stage->pSpecializationInfo = &s->info;
}

/* ---- the self-check ----------------------------------------------------- */

typedef struct { uint32_t rows, cols, n_tok, row_bytes, x_off, x_stride, y_off, y_stride; float scale; uint32_t add, s_off; } product_pc;

/* Records one product dispatch of pipeline pipe (built already). */
static int record(sd_vk_device *d, VkCommandBuffer cb, VkDescriptorPool pool, int pipe, sd_vk_buffer *w,
                  sd_vk_buffer *x, sd_vk_buffer *y, const product_pc *pc, uint32_t gx, uint32_t gy)
{
    sd_vk_instance *vk = &d->vk;
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = pool, .descriptorSetCount = 1, .pSetLayouts = &d->dsl};
    VkDescriptorSet ds;
    if (vk->vkAllocateDescriptorSets(d->dev, &ai, &ds) != VK_SUCCESS) return -1;
    sd_vk_buffer *bs[4] = {w, x, y, y};   /* binding 3 is unused by the products */
    VkDescriptorBufferInfo bi[4];
    VkWriteDescriptorSet wr[4];
    for (uint32_t i = 0; i < 4; i++) {
        bi[i] = (VkDescriptorBufferInfo){bs[i]->buf, 0, VK_WHOLE_SIZE};
        wr[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = ds, .dstBinding = i,
                                       .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = &bi[i]};
    }
    vk->vkUpdateDescriptorSets(d->dev, 4, wr, 0, NULL);
    vk->vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipes[pipe]);
    vk->vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout, 0, 1, &ds, 0, NULL);
    vk->vkCmdPushConstants(cb, d->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof *pc, pc);
    vk->vkCmdDispatch(cb, gx, gy, 1);
    return 0;
}

/* Past this relative L2 difference the coop kernel is wrong, not rounded:
 * F16 operands put it near 1e-3 from the tiled kernel's (tests/test_gpu_coopmat.c),
 * a misplaced tile or element near 1. */
#define COOP_CHECK_TOL 2e-2

static void disable(sd_vk_device *d, int fi, const char *why)
{
    d->coop.state[fi] = -1;
    d->coop.on = 0;
    d->coop.off = "its self-check failed";
    snprintf(d->coop.notice, sizeof d->coop.notice,
             "cooperative-matrix prefill disabled (%.100s); the plain tiled kernel runs", why);
}

int sd_vk_coop_check(sd_vk_device *d, const sd_weight *meta, sd_vk_buffer *w, char *err)
{
    int fi = sd_vk_matvec_index(meta->type);
    if (!d->coop.on || fi < 0 || d->coop.state[fi]) return 0;
    sd_vk_instance *vk = &d->vk;
    char perr[SD_ERR_LEN];
    if (sd_vk_pipeline(d, SD_VK_COOP_FIRST + fi, perr)) {   /* the driver refused the kernel */
        disable(d, fi, perr);
        return 0;
    }
    if (sd_vk_pipeline(d, SD_VK_MATMUL_FIRST + fi, err)) return -1;
    /* Two row tiles and one token tile and a bit (partial tiles on both
     * sides), every column; random activations in [-1, 1], Q8_1 block
     * sums after them for Q4_1/Q5_1. */
    uint32_t rows = (uint32_t)meta->rows < 2 * d->coop.bm ? (uint32_t)meta->rows : 2 * d->coop.bm;
    uint32_t n_tok = d->coop.bn + 3, cols = (uint32_t)meta->cols;
    size_t nx = (size_t)n_tok * (cols + cols / 32 + 1), ny = (size_t)n_tok * rows;
    sd_vk_buffer xb = {0}, yp = {0}, yc = {0};
    VkDescriptorPool pool = VK_NULL_HANDLE;
    VkCommandBuffer cb = VK_NULL_HANDLE;
    int rc = -1;
    if (sd_vk_buffer_new(d, nx * 4, 1, &xb, err) || sd_vk_buffer_new(d, ny * 4, 1, &yp, err) ||
        sd_vk_buffer_new(d, ny * 4, 1, &yc, err))
        goto out;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < nx; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        ((float *)xb.map)[i] = (float)((s >> 40) / 8388608.0 - 1.0);
    }
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 2 * SD_VK_BINDINGS};   /* a set takes the layout's all */
    VkDescriptorPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 2,
                                      .poolSizeCount = 1, .pPoolSizes = &ps};
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = d->cpool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vk->vkCreateDescriptorPool(d->dev, &pci, NULL, &pool);
    if (r != VK_SUCCESS) pool = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) r = vk->vkAllocateCommandBuffers(d->dev, &ai, &cb);
    if (r != VK_SUCCESS) cb = VK_NULL_HANDLE;
    if (r == VK_SUCCESS) r = vk->vkBeginCommandBuffer(cb, &bi);
    product_pc pc = {rows, cols, n_tok, (uint32_t)meta->row_bytes, 0, cols, 0, rows, 1.0f, 0, n_tok * cols};
    if (r != VK_SUCCESS ||
        record(d, cb, pool, SD_VK_MATMUL_FIRST + fi, w, &xb, &yp, &pc, (rows + 31) / 32, (n_tok + 31) / 32) ||
        record(d, cb, pool, SD_VK_COOP_FIRST + fi, w, &xb, &yc, &pc, (rows + d->coop.bm - 1) / d->coop.bm,
               (n_tok + d->coop.bn - 1) / d->coop.bn)) {
        snprintf(err, SD_ERR_LEN, "vulkan: cooperative-matrix self-check: %s", sd_vk_result(r));
        if (cb) vk->vkEndCommandBuffer(cb);
        goto out;
    }
    VkMemoryBarrier hb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vk->vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &hb, 0, NULL, 0,
                             NULL);
    if (sd_vk_submit_wait(d, cb, 0, err)) goto out;
    double num = 0, den = 0;
    const float *a = yc.map, *b = yp.map;
    for (size_t i = 0; i < ny; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    double e = den > 0 ? sqrt(num / den) : sqrt(num);
    if (sd_vk_fault(SD_VK_FAULT_COOP)) e = 1;
    if (!(e <= COOP_CHECK_TOL)) {   /* NaN too */
        char why[96];
        snprintf(why, sizeof why, "its self-check on %s weights differs from the tiled kernel by %.2g", sd_type_name(meta->type), e);
        disable(d, fi, why);
    } else {
        d->coop.state[fi] = 1;
    }
    rc = 0;
out:
    if (cb) vk->vkFreeCommandBuffers(d->dev, d->cpool, 1, &cb);
    if (pool) vk->vkDestroyDescriptorPool(d->dev, pool, NULL);
    sd_vk_buffer_free(d, &xb); sd_vk_buffer_free(d, &yp); sd_vk_buffer_free(d, &yc);
    return rc;
}

int sd_vk_coop_info(int device, sd_vk_coop *out, char *err)
{
    sd_vk_device d;
    if (sd_vk_device_open(device, &d, err)) return -1;
    *out = d.coop;
    sd_vk_device_close(&d);
    return 0;
}
