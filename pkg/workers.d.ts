import type { LogEvent } from './dist/bep.js';

/** A Cloudflare Queue producer binding (only what is used). */
export interface QueueProducer {
  sendBatch(messages: Iterable<{ body: unknown; contentType?: string }>): Promise<void>;
}

/** A message of a Cloudflare Queues consumer batch (only what is used). */
export interface QueueMessage {
  body: unknown;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/**
 * A dispatcher that sends each batch to a Cloudflare Queue as `{ url, body }` messages
 * (split by visitor under 128 KB; `sendBatch` groups of at most 100 messages / 256 KB).
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
 * Queue consumer: merges the messages into full-size Optimizely batches per context,
 * POSTs them, acks each message whose batch got a 2xx and retries the others.
 * Never throws.
 */
export function handleQueueBatch(
  batch: { messages: readonly QueueMessage[] },
  options?: HandleQueueBatchOptions,
): Promise<{ posts: number; acked: number; retried: number }>;
