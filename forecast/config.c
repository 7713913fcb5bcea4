/*
 * The architecture config: defaults, the number of patches a config
 * gives, the checks a config must pass before a model is built from it,
 * and the backbone names.  Depends on nothing else in forecast/ (only on
 * the network's token limit), so the network's layout can use it.
 */
#include "forecast/internal.h"

#include <errno.h>
#include <string.h>

void fc_config_default(struct fc_config *c)
{
	memset(c, 0, sizeof(*c));
	c->backbone = FC_BACKBONE_GRU;
	c->lookback = 96;
	c->horizon = 96;
	c->patch_len = 16;
	c->patch_stride = 8;
	c->d_model = 64;
	c->n_layers = 1;
	c->n_heads = 4;
	c->d_ff = 128;
	c->lora_rank = 4;
	c->mask_ratio = 0.33f;
	c->mask_seg = 16;
}

int fc_config_patches(const struct fc_config *c)
{
	if (c->patch_stride <= 0 || c->lookback < c->patch_len)
		return 0;
	return (c->lookback - c->patch_len) / c->patch_stride + 2;
}

int fc_config_check(const struct fc_config *c, char *errbuf, size_t size)
{
	if (c->backbone != FC_BACKBONE_GRU &&
	    c->backbone != FC_BACKBONE_TRANSFORMER)
		return fc_fail(errbuf, size, -EINVAL, "unknown backbone %d",
			       c->backbone);
	if (c->lookback < 16 || c->lookback > 720)
		return fc_fail(errbuf, size, -EINVAL,
			       "lookback %d out of range 16..720", c->lookback);
	if (c->horizon < 1 || c->horizon > 720)
		return fc_fail(errbuf, size, -EINVAL,
			       "horizon %d out of range 1..720", c->horizon);
	if (c->patch_len < 1 || c->patch_len > c->lookback ||
	    c->patch_stride < 1 || c->patch_stride > c->patch_len)
		return fc_fail(errbuf, size, -EINVAL,
			       "patch %d / stride %d do not fit lookback %d",
			       c->patch_len, c->patch_stride, c->lookback);
	if (fc_config_patches(c) > NN_MAX_TOKENS)
		return fc_fail(errbuf, size, -EINVAL, "%d patches exceed %d",
			       fc_config_patches(c), NN_MAX_TOKENS);
	if (c->d_model < 2 || c->d_model > 1024)
		return fc_fail(errbuf, size, -EINVAL,
			       "width %d out of range 2..1024", c->d_model);
	if (c->n_layers < 1 || c->n_layers > FC_MAX_LAYERS)
		return fc_fail(errbuf, size, -EINVAL,
			       "layers %d out of range 1..%d", c->n_layers,
			       FC_MAX_LAYERS);
	if (c->backbone == FC_BACKBONE_TRANSFORMER &&
	    (c->n_heads < 1 || c->d_model % c->n_heads))
		return fc_fail(errbuf, size, -EINVAL,
			       "heads %d must divide width %d", c->n_heads,
			       c->d_model);
	if (c->d_ff < 1 || c->d_ff > 8192)
		return fc_fail(errbuf, size, -EINVAL,
			       "feed-forward width %d out of range 1..8192",
			       c->d_ff);
	if (c->lora_rank < 1 || c->lora_rank > 64)
		return fc_fail(errbuf, size, -EINVAL,
			       "LoRA rank %d out of range 1..64", c->lora_rank);
	if (!(c->mask_ratio >= 0.0f && c->mask_ratio <= 0.9f))
		return fc_fail(errbuf, size, -EINVAL,
			       "mask ratio %g out of range 0..0.9",
			       (double)c->mask_ratio);
	if (c->mask_seg < 1 || c->mask_seg > c->lookback)
		return fc_fail(errbuf, size, -EINVAL,
			       "mask segment %d out of range 1..lookback",
			       c->mask_seg);
	return 0;
}

const char *fc_backbone_name(int backbone)
{
	return backbone == FC_BACKBONE_GRU	     ? "gru"
	       : backbone == FC_BACKBONE_TRANSFORMER ? "transformer"
						     : "unknown";
}

int fc_backbone_parse(const char *name, int *ret_backbone)
{
	if (!strcmp(name, "gru"))
		*ret_backbone = FC_BACKBONE_GRU;
	else if (!strcmp(name, "transformer"))
		*ret_backbone = FC_BACKBONE_TRANSFORMER;
	else
		return -EINVAL;
	return 0;
}
