import torch

from rckd.engine.distributed import StepBatchSampler, all_reduce_mean, init_distributed, is_main, reduce_dict


def test_single_process_helpers():
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True) and is_main()
    assert all_reduce_mean(torch.tensor(3.0)).item() == 3.0
    assert reduce_dict({"a": torch.tensor(1.0), "b": 2.0}) == {"a": 1.0, "b": 2.0}


def test_ranks_share_the_single_process_batches():
    single = list(StepBatchSampler(20, 4, total_steps=7, seed=3))
    ranks = [list(StepBatchSampler(20, 2, total_steps=7, world_size=2, rank=r, seed=3)) for r in (0, 1)]
    for step, batch in enumerate(single):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)
        assert not set(ranks[0][step]) & set(ranks[1][step])
    # epochs (5 steps each) are permutations; the next epoch reshuffles
    assert sorted(sum(single[:5], [])) == list(range(20))
    assert single[5] != single[0]


def test_resumed_sampler_continues_exactly():
    full = list(StepBatchSampler(20, 4, total_steps=9, seed=1))
    assert list(StepBatchSampler(20, 4, total_steps=9, start_step=6, seed=1)) == full[6:]
    assert len(StepBatchSampler(20, 4, total_steps=9, start_step=6)) == 3
