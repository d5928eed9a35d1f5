/**
 * The page's update loop for streaming replies (src/updates.ts), on a fake clock, fake timers and
 * fake frames: replies update together on one frame, at a pace their cost allows.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { IUpdatable, UpdateLoop } from '../src/updates';

/** A clock, timers and frames the test moves by hand. */
class FakePage {
  time = 0;
  frames = 0;
  /** How long the browser takes to render a frame (ms of the fake clock). */
  frameCost = 0;
  timers: { run: () => void; at: number; ms: number }[] = [];

  loop(options: { budget?: number; minInterval?: number; maxInterval?: number } = {}): UpdateLoop {
    return new UpdateLoop({
      ...options,
      now: () => this.time,
      nextFrame: async () => {
        this.frames += 1;
      },
      afterFrame: async () => {
        this.time += this.frameCost;
      },
      setTimer: (run, ms) => {
        const timer = { run, at: this.time + ms, ms };
        this.timers.push(timer);
        return timer;
      },
      clearTimer: timer => {
        this.timers = this.timers.filter(t => t !== timer);
      }
    });
  }

  /** Move the clock to the next timer, fire it and let the update it starts finish. */
  async fireNext(): Promise<number> {
    assert.ok(this.timers.length > 0, 'a timer is pending');
    this.timers.sort((a, b) => a.at - b.at);
    const timer = this.timers.shift()!;
    this.time = Math.max(this.time, timer.at);
    timer.run();
    await settle();
    return timer.ms;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await Promise.resolve();
  }
}

/** A reply whose rendering costs `cost` ms of the fake clock; counts its commits. */
class FakeReply implements IUpdatable {
  constructor(
    private readonly _page: FakePage,
    public cost = 0
  ) {}
  urgent = false;
  prepared = 0;
  committed = 0;
  committedOnFrame: number[] = [];

  async prepare(): Promise<() => void> {
    this.prepared += 1;
    this._page.time += this.cost;
    return () => {
      this.committed += 1;
      this.committedOnFrame.push(this._page.frames);
    };
  }
}

describe('UpdateLoop', () => {
  test('replies asking together are committed on one frame', async () => {
    const page = new FakePage();
    const loop = page.loop();
    const replies = [0, 1, 2, 3].map(() => new FakeReply(page, 1));
    for (const reply of replies) {
      loop.request(reply);
    }
    assert.equal(page.timers.length, 1, 'one update planned for all');
    await page.fireNext();
    assert.equal(page.frames, 1);
    for (const reply of replies) {
      assert.deepEqual(reply.committedOnFrame, [1]);
    }
    assert.equal(page.timers.length, 0, 'nothing left to do');
  });

  test('a reply asking again keeps one place in the next update', async () => {
    const page = new FakePage();
    const loop = page.loop();
    const reply = new FakeReply(page);
    loop.request(reply);
    loop.request(reply);
    await page.fireNext();
    assert.equal(reply.prepared, 1);
    for (let i = 0; i < 5; i++) {
      loop.request(reply);
    }
    await page.fireNext();
    assert.equal(reply.prepared, 2);
    assert.equal(page.timers.length, 0);
  });

  test('a request during an update is served by the next one, not lost', async () => {
    const page = new FakePage();
    const loop = page.loop();
    const late = new FakeReply(page);
    const first: IUpdatable = {
      urgent: false,
      prepare: async () => {
        loop.request(late); // while this update is on its way
        return () => undefined;
      }
    };
    loop.request(first);
    await page.fireNext();
    assert.equal(late.prepared, 0, 'not taken into the running update');
    assert.equal(page.timers.length, 1, 'a next update is planned');
    await page.fireNext();
    assert.equal(late.committed, 1);
  });

  test('cheap updates come every minInterval', async () => {
    const page = new FakePage();
    const loop = page.loop({ minInterval: 50, budget: 0.1 });
    const reply = new FakeReply(page, 1);
    page.frameCost = 2; // 3 ms per update: 30 ms at a 10 % budget, below the floor
    loop.request(reply);
    await page.fireNext();
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      loop.request(reply);
      const start = page.time;
      await page.fireNext();
      waits.push(page.time - start - 3);
    }
    assert.equal(loop.interval, 50);
    assert.deepEqual(
      waits,
      [47, 47, 47, 47, 47],
      'the next update starts 50 ms after the last one began'
    );
  });

  test('costly updates are spaced so that they keep to the budget', async () => {
    const page = new FakePage();
    const loop = page.loop({ minInterval: 50, maxInterval: 250, budget: 0.1 });
    const reply = new FakeReply(page, 2);
    page.frameCost = 7; // 9 ms per update: every 90 ms at a 10 % budget
    const started = page.time;
    for (let i = 0; i < 20; i++) {
      loop.request(reply);
      await page.fireNext();
    }
    assert.ok(Math.abs(loop.interval - 90) < 1e-9, `interval ${loop.interval}`);
    const busy = (reply.committed * 9) / (page.time - started);
    assert.ok(busy <= 0.1 + 0.01, `busy ${busy}`);
    // And however slow, a reply still updates every maxInterval.
    reply.cost = 100;
    for (let i = 0; i < 10; i++) {
      loop.request(reply);
      await page.fireNext();
    }
    assert.equal(loop.interval, 250);
  });

  test('one slow update does not stall the next ones', async () => {
    const page = new FakePage();
    const loop = page.loop({ minInterval: 50, budget: 0.1 });
    const reply = new FakeReply(page, 2);
    page.frameCost = 1;
    for (let i = 0; i < 10; i++) {
      loop.request(reply);
      await page.fireNext();
    }
    reply.cost = 60; // a large code block, once
    loop.request(reply);
    await page.fireNext();
    reply.cost = 2;
    const intervals: number[] = [];
    for (let i = 0; i < 8; i++) {
      loop.request(reply);
      await page.fireNext();
      intervals.push(loop.interval);
    }
    assert.ok(intervals[0] > 100, `slower right after: ${intervals}`);
    assert.ok(intervals[intervals.length - 1] === 50, `back to 50 ms: ${intervals}`);
  });

  test('a reply that ended is updated at once, without waiting for the pace', async () => {
    const page = new FakePage();
    const loop = page.loop({ minInterval: 50 });
    const streaming = new FakeReply(page);
    loop.request(streaming);
    await page.fireNext();
    loop.request(streaming);
    assert.equal(page.timers[0].ms, 50, 'a streaming reply waits for the pace');
    const ended = new FakeReply(page);
    ended.urgent = true;
    loop.request(ended);
    assert.equal(page.timers.length, 1, 'the planned update was replaced');
    assert.equal(await page.fireNext(), 0);
    assert.equal(ended.committed, 1);
    assert.equal(streaming.committed, 2, 'the waiting reply came along');
  });

  test('a cancelled reply is not updated; a failing one does not stop the others', async () => {
    const page = new FakePage();
    const loop = page.loop();
    const gone = new FakeReply(page);
    const fine = new FakeReply(page);
    const broken: IUpdatable = {
      urgent: false,
      prepare: async () => () => {
        throw new Error('commit failed');
      }
    };
    const warn = console.warn;
    console.warn = () => undefined;
    try {
      loop.request(gone);
      loop.request(broken);
      loop.request(fine);
      loop.cancel(gone);
      await page.fireNext();
    } finally {
      console.warn = warn;
    }
    assert.equal(gone.prepared, 0);
    assert.equal(fine.committed, 1);
    loop.request(fine);
    await page.fireNext();
    assert.equal(fine.committed, 2, 'the loop goes on');
  });
});
