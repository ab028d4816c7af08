// Sidecar images become Docker volumes holding the image's files, mounted into
// the task container. Unlike the Go worker:
// * a read-only sidecar's volume is shared only once complete: it is filled
//   under a unique name and an empty marker volume, created last, vouches for
//   it; concurrent tasks of this process share one fill (one lock per image);
// * a read-write sidecar gets a fresh volume per task, removed with the task;
// * the helper containers are removed after the copy, and the copy needs no
//   shell or tar inside the sidecar image (the daemon extracts the archive).
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log/logger.js';
import type { SidecarMount } from '../../protocol/messages.js';
import type { TaskParams } from '../../task/contract.js';
import { FILL_TARGET, helperContainerBody, LABELS, taskLabels, workerLabels } from './container-spec.js';
import { errorText, isNotFound, type DockerEngine } from './engine.js';
import { sidecarVolumeBase } from './reference.js';

/** The shared volume of a read-only sidecar: `oz-sidecar-<repo>-<image id>`, the marker's name. */
export function sharedSidecarMarker(image: string, imageId: string): string {
  return `oz-sidecar-${sidecarVolumeBase(image, imageId)}`;
}

export class SidecarVolumes {
  /** Fills in progress, by marker name: later tasks wait for the same fill. */
  private readonly filling = new Map<string, Promise<string>>();

  constructor(
    private readonly engine: DockerEngine,
    private readonly workerId: string,
  ) {}

  /**
   * The complete shared volume for a read-only sidecar, filled first when no
   * complete one exists. Not bound to one task's cancellation: other tasks may
   * be waiting for the same fill.
   */
  shared(image: string, imageId: string, log: Logger): Promise<string> {
    const marker = sharedSidecarMarker(image, imageId);
    let fill = this.filling.get(marker);
    if (!fill) {
      fill = this.findOrFill(marker, image, imageId, log).finally(() => this.filling.delete(marker));
      this.filling.set(marker, fill);
    }
    return fill;
  }

  private async findOrFill(marker: string, image: string, imageId: string, log: Logger): Promise<string> {
    const existing = await this.engine.inspectVolume(marker);
    if (existing) {
      const data = existing.Labels?.[LABELS.sidecarData];
      if (data && (await this.engine.inspectVolume(data))) {
        log.debug(`Reusing volume ${data} for sidecar ${image}`);
        return data;
      }
      // The data volume went away (e.g. docker volume prune): the marker vouches for nothing.
      log.warn(`Sidecar volume marker ${marker} names a missing volume; filling the sidecar again`);
      await this.engine.removeVolume(marker).catch(() => undefined);
    }
    const data = `${marker}-${randomBytes(4).toString('hex')}`;
    const labels = {
      ...workerLabels(this.workerId, 'sidecar-data'),
      [LABELS.sidecarImage]: image,
      [LABELS.sidecarImageId]: imageId,
    };
    log.info(`Creating Docker volume ${data} for sidecar ${image}`);
    await this.engine.createVolume(data, labels);
    try {
      await this.fill(image, data, log);
    } catch (error) {
      await this.removeVolume(data, log);
      throw error;
    }
    // Creating the marker is the commit. Creating an existing volume returns it,
    // so a concurrent worker that committed first is found here and wins.
    const committed = await this.engine.createVolume(marker, {
      ...workerLabels(this.workerId, 'sidecar-ready'),
      [LABELS.sidecarImage]: image,
      [LABELS.sidecarImageId]: imageId,
      [LABELS.sidecarData]: data,
    });
    const winner = committed.Labels?.[LABELS.sidecarData];
    if (winner && winner !== data) {
      await this.removeVolume(data, log);
      return winner;
    }
    return data;
  }

  /** A fresh volume with the sidecar's files for one task (read-write sidecars). */
  async perTask(sidecar: SidecarMount, name: string, params: TaskParams, log: Logger): Promise<string> {
    log.info(`Creating Docker volume ${name} for read-write sidecar ${sidecar.image} (this task only)`);
    await this.engine.createVolume(name, { ...taskLabels(this.workerId, params, 'task-sidecar'), [LABELS.sidecarImage]: sidecar.image });
    try {
      await this.fill(sidecar.image, name, log);
    } catch (error) {
      await this.removeVolume(name, log);
      throw error;
    }
    return name;
  }

  /** Copies the image's root file system into `volume` through two never-started containers. */
  private async fill(image: string, volume: string, log: Logger): Promise<void> {
    const labels = workerLabels(this.workerId, 'sidecar-helper');
    const helpers: string[] = [];
    try {
      const source = await this.engine.createContainer(undefined, helperContainerBody(image, labels));
      helpers.push(source);
      const target = await this.engine.createContainer(undefined, helperContainerBody(image, labels, volume));
      helpers.push(target);
      log.debug(`Copying the files of ${image} into volume ${volume}`);
      const tar = await this.engine.exportContainer(source);
      try {
        await this.engine.putArchive(target, FILL_TARGET, tar);
      } finally {
        tar.destroy();
      }
    } catch (error) {
      throw new Error(`failed to copy the sidecar's files to volume ${volume}: ${errorText(error)}`, { cause: error });
    } finally {
      for (const id of helpers) {
        await this.engine.removeContainer(id, { force: true, volumes: true }).catch((error: unknown) => {
          if (!isNotFound(error)) log.warn(`Failed to remove helper container ${id.slice(0, 12)}: ${errorText(error)}`);
        });
      }
    }
    log.info(`Copied sidecar ${image} into volume ${volume}`);
  }

  async removeVolume(name: string, log: Logger): Promise<void> {
    try {
      await this.engine.removeVolume(name);
    } catch (error) {
      if (!isNotFound(error)) log.warn(`Failed to remove volume ${name}: ${errorText(error)}`);
    }
  }
}
