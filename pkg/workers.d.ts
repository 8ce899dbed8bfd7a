import type { LogEvent } from './dist/bep.js';

/** A Cloudflare Queue producer binding (only what is used). */
export interface QueueProducer {
  sendBatch(messages: Iterable<{ body: unknown; contentType?: string }>): Promise<void>;
}

/**
 * The body of a message `queueDispatcher` sends (`contentType: 'v8'`): `bytes` is the
 * exact Optimizely EventBatch body (UTF-8), `url` where it was to be POSTed.
 */
export interface QueuedBatch {
  url: string;
  bytes: Uint8Array;
}

/** The JSON message body earlier releases sent; `handleQueueBatch` still accepts it. */
export interface LegacyQueuedBatch {
  url: string;
  body: string;
}

/** A message of a Cloudflare Queues consumer batch (only what is used). */
export interface QueueMessage {
  /** A `QueuedBatch` or a `LegacyQueuedBatch`; anything else is retried (to the dead-letter queue). */
  body: unknown;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/**
 * A dispatcher that sends each batch to a Cloudflare Queue as `QueuedBatch` messages
 * (`{ url, bytes }`, `contentType: 'v8'`: the bytes the processor wrote, never decoded),
 * split by visitor into messages of at most 120 KB, in `sendBatch` groups of at most 100
 * messages / 250 KB. A batch holding a visitor too large for one message resolves
 * `{ statusCode: 413 }` before anything is sent.
 */
export function queueDispatcher(queue: QueueProducer): (logEvent: LogEvent) => Promise<{ statusCode: number }>;

/** Options of `handleQueueBatch`. */
export interface HandleQueueBatchOptions {
  /** Where merged batches are POSTed; default: each message's url. */
  endpoint?: string;
  /** Largest merged body in UTF-8 bytes. Default 3500000. */
  maxPayloadBytes?: number;
  /** Seconds before Queues redelivers a message whose batch failed. Default 30. */
  retryDelay?: number;
  /** ms per POST before it is aborted. Default 10000. */
  timeout?: number;
  /** The fetch to POST with. Default the global fetch. */
  fetch?: (url: string, init: RequestInit) => Promise<{ status: number }>;
}

/**
 * Queue consumer: merges the messages (`QueuedBatch`, or `LegacyQueuedBatch` of earlier
 * releases) into full-size Optimizely batches per context, POSTs them as bytes, acks
 * each message whose batch got a 2xx and retries the others. Never throws.
 */
export function handleQueueBatch(
  batch: { messages: readonly QueueMessage[] },
  options?: HandleQueueBatchOptions,
): Promise<{ posts: number; acked: number; retried: number }>;
