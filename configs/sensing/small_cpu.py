# Narrow sensing U-Nets for CPU: trains A_i and A_v on the synthetic default in a couple
# of minutes each on two idle cores (1,280 iterations of 16 patches). The schedule keeps
# the paper's shape (Adam, x0.5 step decay) with a larger learning rate, since the run
# lasts minutes, not 40 epochs of the full MSRS set. Sharper sensing nets matter: EMMA's
# loss reaches the fuser only through them.
_base_ = ["./paper.py"]

widths = (8, 16, 32, 64, 128)
patch_size = 64
stride = 48
max_patches = 256  # patches; each pseudo-GT method gives one sample per patch
pseudo_gt = ("mean", "max", "laplacian", "dwt")
epochs = 20
batch_size = 16
lr = 2e-3
lr_step = 8

model = dict(widths=widths)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pseudo_gt=pseudo_gt, patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(max_epochs=epochs)
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5)]
default_hooks = dict(logger=dict(interval=20))
