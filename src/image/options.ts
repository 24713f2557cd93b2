import { getBackbone, type EmbeddingSettings } from '../model/registry.js';
import type { PrepareOptions } from './prepare.js';

/** How to prepare images for a backbone under the given settings. */
export function prepareOptionsFor(settings: EmbeddingSettings): PrepareOptions {
  const spec = getBackbone(settings.backbone);
  return {
    width: settings.width,
    height: settings.height,
    resize: settings.resize,
    channelOrder: spec.channelOrder,
    channelMeans: spec.channelMeans,
  };
}
