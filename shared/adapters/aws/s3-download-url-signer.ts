import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { DownloadUrlSigner } from '../../app/api/deps';

/**
 * Presigns a GET of the finished file for a few minutes, at the moment of the download, with the
 * function's current credentials. The response headers make the browser save it under the
 * export's file name (RFC 6266 with an RFC 5987 UTF-8 name: Korean names survive).
 */
export class S3DownloadUrlSigner implements DownloadUrlSigner {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async presignGet(objectKey: string, options: { expiresInSeconds: number; fileName: string }): Promise<string> {
    const ascii = options.fileName.replace(/[^\x20-\x7E]/g, '_').replace(/["\\]/g, '_');
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: objectKey,
      ResponseContentDisposition: `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(options.fileName)}`,
      ResponseContentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
      ResponseCacheControl: 'no-store',
    });
    return getSignedUrl(this.s3, command, { expiresIn: options.expiresInSeconds });
  }
}
